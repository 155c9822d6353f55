/*
 * gen: make filesystem events as fast as one process can.
 *
 *   gen DIR N            create N files f0000000.. in DIR (open O_CREAT,
 *                        write 8 bytes, close); prints elapsed seconds
 *   gen --tree DIR NDIRS create exactly NDIRS directories under DIR, ten
 *                        children per directory, breadth first
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FANOUT 10

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "gen: %s %s: %s\n", what, arg, strerror(errno));
    exit(1);
}

static int open_dir(const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        die("mkdir", dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        die("open", dir);
    return fd;
}

static int files(const char *dir, long n)
{
    /* relative to a dir fd, so the kernel does not walk DIR's path per file */
    int dfd = open_dir(dir);
    char name[32];
    double t0 = now();
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "f%07ld", i);
        int fd = openat(dfd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            die("create", name);
        if (write(fd, "12345678", 8) != 8)
            die("write", name);
        close(fd);
    }
    printf("%.3f\n", now() - t0);
    return 0;
}

/*
 * Directory k (1..NDIRS) is named d<k>; its parent is directory (k-1)/10,
 * 0 being DIR itself. Creating in increasing k makes every parent exist
 * before its children.
 */
static int tree(const char *dir, long ndirs)
{
    int dfd = open_dir(dir);
    char path[4096];
    long chain[64];
    double t0 = now();
    for (long k = 1; k <= ndirs; k++) {
        int depth = 0;
        for (long j = k; j > 0; j = (j - 1) / FANOUT)
            chain[depth++] = j;
        size_t len = 0;
        while (depth > 0)
            len += snprintf(path + len, sizeof path - len, "%sd%ld", len ? "/" : "", chain[--depth]);
        if (mkdirat(dfd, path, 0755) < 0)
            die("mkdir", path);
    }
    printf("%.3f\n", now() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--tree") == 0)
        return tree(argv[2], atol(argv[3]));
    if (argc == 3)
        return files(argv[1], atol(argv[2]));
    fprintf(stderr, "usage: gen DIR N | gen --tree DIR NDIRS\n");
    return 2;
}
