/*
 * raw_reader: the baseline for the benchmarks. As little as a correct
 * inotify consumer can do: one read() into a large buffer, one printf per
 * event, one fflush per read() batch.
 *
 *   raw_reader [-r] [-m MASK_INT] DIR
 *
 * Prints "ready N" (N = watches added) on stderr once every watch is in
 * place, then "wd 0xMASK name" per event on stdout. An overflow shows up as
 * "-1 0x4000 " (the kernel's IN_Q_OVERFLOW event). Exits 0 on SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

static int ifd;
static uint32_t mask = IN_ALL_EVENTS;
static long nwatches;

/*
 * Shutdown without an extra syscall per batch (no poll/signalfd): stdout is
 * flushed after every batch, so whenever we are not between read() and
 * fflush() there is nothing buffered and the handler may _exit at once.
 * Inside a batch it only sets the flag and the loop exits after the flush.
 */
static volatile sig_atomic_t busy, stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
    if (!busy)
        _exit(0);
}

static void add_watch(const char *path)
{
    if (inotify_add_watch(ifd, path, mask) < 0) {
        fprintf(stderr, "raw_reader: inotify_add_watch %s: %s\n", path, strerror(errno));
        exit(1);
    }
    nwatches++;
}

static int walk_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    /*
     * FTW_PHYS: symlinks come as FTW_SL and are never followed. FTW_DEPTH:
     * a directory is reported after nftw has read and closed it, so our own
     * walk does not queue open/close events on the watches we just added.
     */
    if (type == FTW_DP)
        add_watch(path);
    return 0;
}

int main(int argc, char **argv)
{
    int recursive = 0, opt;

    while ((opt = getopt(argc, argv, "rm:")) != -1) {
        switch (opt) {
        case 'r': recursive = 1; break;
        case 'm': mask = (uint32_t)strtoul(optarg, NULL, 0); break;
        default:
            fprintf(stderr, "usage: raw_reader [-r] [-m MASK_INT] DIR\n");
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: raw_reader [-r] [-m MASK_INT] DIR\n");
        return 2;
    }
    const char *dir = argv[optind];

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a signal must interrupt the blocking read() */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ifd = inotify_init1(IN_CLOEXEC);
    if (ifd < 0) {
        perror("raw_reader: inotify_init1");
        return 1;
    }
    if (recursive) {
        if (nftw(dir, walk_cb, 64, FTW_PHYS | FTW_DEPTH) != 0) {
            perror("raw_reader: nftw");
            return 1;
        }
    } else {
        add_watch(dir);
    }

    static char out[1 << 20];
    setvbuf(stdout, out, _IOFBF, sizeof out);
    fprintf(stderr, "ready %ld\n", nwatches);
    fflush(stderr);

    static char buf[BUF_SIZE] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(ifd, buf, sizeof buf);
        busy = 1;
        if (n < 0) {
            if (errno == EINTR)
                break;
            perror("raw_reader: read");
            return 1;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            printf("%d 0x%x %s\n", ev->wd, ev->mask, ev->len ? ev->name : "");
            p += sizeof *ev + ev->len;
        }
        fflush(stdout);
        busy = 0;
        if (stop)
            break;
    }
    fflush(stdout);
    return 0;
}
