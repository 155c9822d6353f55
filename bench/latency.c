/*
 * latency: event latency of a running watcher, read from its stdout.
 *
 *   latency [-n COUNT] [-w WARMUP] [-e LINES] [-g MIN_US:MAX_US] DIR < watcher-stdout
 *
 * For each of WARMUP+COUNT files: take the time, create DIR/lat-NNNNNNN
 * (open O_CREAT, write 8 bytes, close), then read stdin until a line that
 * contains that name shows up; the difference is one sample. Lines are
 * matched on the (fixed-width, unique) file name only, so any watcher's
 * format works and a stray or late event of another file is never counted.
 * Before the next file it also waits for the remaining LINES-1 lines of the
 * same file (default 2: create + close_write), so each sample starts with an
 * idle watcher, then sleeps a random gap between MIN_US and MAX_US.
 * The time includes the create's own syscalls (open, write, close: a few
 * µs, the same for every watcher).
 *
 * Prints one line:
 *   n=COUNT missed=M p50=.. p90=.. p99=.. max=..   (microseconds)
 * A file whose first line does not come within 2 s counts as missed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MISS_US 2000000LL /* first line later than this: missed */
#define EXTRA_US 200000LL /* how long to wait for a file's other lines */

static char buf[1 << 20];
static size_t buflen;

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/*
 * Consume whole lines from buf; returns how many of them contain name.
 * A partial last line stays in buf for the next read.
 */
static int consume_lines(const char *name)
{
    int hits = 0;
    char *start = buf, *end = buf + buflen, *nl;
    while ((nl = memchr(start, '\n', end - start))) {
        *nl = 0;
        if (strstr(start, name))
            hits++;
        start = nl + 1;
    }
    buflen = end - start;
    memmove(buf, start, buflen);
    if (buflen == sizeof buf - 1)
        buflen = 0; /* a 1 MiB line is not one of ours */
    return hits;
}

/*
 * Read stdin until `want` lines containing name were seen or deadline passes.
 * Returns the number seen; *t_first is the time the read() that brought the
 * first of them returned.
 */
static int wait_lines(const char *name, int want, long long deadline, long long *t_first)
{
    int seen = consume_lines(name);
    if (seen && t_first)
        *t_first = now_us();
    while (seen < want) {
        long long left = deadline - now_us();
        if (left <= 0)
            break;
        struct pollfd pfd = { .fd = 0, .events = POLLIN };
        int r = poll(&pfd, 1, (int)(left / 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(0, buf + buflen, sizeof buf - 1 - buflen);
        long long t = now_us();
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "latency: watcher output closed\n");
            exit(1);
        }
        buflen += n;
        int got = consume_lines(name);
        if (got && seen == 0 && t_first)
            *t_first = t;
        seen += got;
    }
    return seen;
}

static void usage(void)
{
    fprintf(stderr, "usage: latency [-n COUNT] [-w WARMUP] [-e LINES] [-g MIN_US:MAX_US] DIR < watcher-stdout\n");
    exit(2);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static long long pct(const long long *v, int n, int p)
{
    int i = (int)((long long)p * n / 100); /* nearest rank, 0-based */
    return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
    int count = 2000, warmup = 50, lines = 2, opt;
    long gmin = 200, gmax = 800;

    while ((opt = getopt(argc, argv, "n:w:e:g:")) != -1) {
        switch (opt) {
        case 'n': count = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'e': lines = atoi(optarg); break;
        case 'g':
            if (sscanf(optarg, "%ld:%ld", &gmin, &gmax) != 2 || gmin > gmax)
                usage();
            break;
        default: usage();
        }
    }
    if (optind != argc - 1 || count <= 0)
        usage();
    int dfd = open(argv[optind], O_RDONLY | O_DIRECTORY);
    if (dfd < 0) {
        perror(argv[optind]);
        return 1;
    }

    long long *samples = calloc(count, sizeof *samples);
    int n = 0, missed = 0, extra_missing = 0, consecutive_missed = 0;
    srand(42); /* same gaps for every watcher */
    for (int i = 0; i < warmup + count; i++) {
        char name[32];
        snprintf(name, sizeof name, "lat-%07d", i);

        long long t0 = now_us(), t1 = 0;
        int fd = openat(dfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, "12345678", 8) != 8) {
            perror(name);
            return 1;
        }
        close(fd);

        int seen = wait_lines(name, 1, t0 + MISS_US, &t1);
        if (seen && seen < lines && wait_lines(name, lines - seen, now_us() + EXTRA_US, NULL) < lines - seen) {
            /* do not spend EXTRA_US per file on a watcher that never sends them */
            if (++extra_missing == 3) {
                fprintf(stderr, "latency: fewer than %d lines per file, no longer waiting for the rest\n", lines);
                lines = 1;
            }
        }
        if (i >= warmup) {
            if (seen)
                samples[n++] = t1 - t0;
            else
                missed++;
        }
        consecutive_missed = seen ? 0 : consecutive_missed + 1;
        if (consecutive_missed == 10) {
            fprintf(stderr, "latency: 10 files in a row not reported, giving up\n");
            return 1;
        }

        long gap = gmin + (gmax > gmin ? rand() % (gmax - gmin + 1) : 0);
        struct timespec ts = { 0, gap * 1000 };
        nanosleep(&ts, NULL);
    }

    if (n == 0) {
        printf("n=0 missed=%d p50=-1 p90=-1 p99=-1 max=-1\n", missed);
        return 1;
    }
    qsort(samples, n, sizeof *samples, cmp_ll);
    printf("n=%d missed=%d p50=%lld p90=%lld p99=%lld max=%lld\n", n, missed,
           pct(samples, n, 50), pct(samples, n, 90), pct(samples, n, 99), samples[n - 1]);
    return 0;
}
