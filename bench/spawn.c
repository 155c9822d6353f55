/*
 * spawn: start a watcher and time it, so that run.sh does not have to
 * measure anything with shell-level polling (a fork+grep per poll is
 * milliseconds, the same order as what we measure).
 *
 *   spawn -r READY [-o OUT] [-e ERRLOG] [-t TIMEOUT_S] -- CMD [ARGS...]
 *
 * Runs CMD with stdout to OUT (default: inherited) and stderr through a pipe
 * that is copied to ERRLOG. Writes key=value lines to its own stdout:
 *   pid=N          right after fork
 *   rss_kib=N      VmRSS when the first stderr line containing READY came,
 *   ready_us=N     and the microseconds from just before fork() to then
 *   exit=N|sigN    when CMD ends; then its CPU time from wait4() rusage,
 *   cpu_us=N       user+sys, all threads, full microsecond resolution
 * If READY does not show up within TIMEOUT_S (default 120), CMD is killed.
 * CMD gets SIGKILL if spawn dies, so nothing outlives the harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static long vm_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void forward(int sig)
{
    if (child > 0)
        kill(child, sig);
}

static void usage(void)
{
    fprintf(stderr, "usage: spawn -r READY [-o OUT] [-e ERRLOG] [-t TIMEOUT_S] -- CMD [ARGS...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *ready = NULL, *out = NULL, *errlog = "/dev/null";
    int timeout_s = 120, opt;

    while ((opt = getopt(argc, argv, "+r:o:e:t:")) != -1) {
        switch (opt) {
        case 'r': ready = optarg; break;
        case 'o': out = optarg; break;
        case 'e': errlog = optarg; break;
        case 't': timeout_s = atoi(optarg); break;
        default: usage();
        }
    }
    if (!ready || optind >= argc)
        usage();
    char **cmd = argv + optind;

    int logfd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd < 0) {
        perror(errlog);
        return 1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        perror("pipe");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    long long t0 = now_us();
    child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* a non-interactive shell starts background jobs with SIGINT ignored */
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        dup2(p[1], 2);
        if (out) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 1) < 0) {
                perror(out);
                _exit(127);
            }
            close(fd);
        }
        execvp(cmd[0], cmd);
        fprintf(stderr, "spawn: exec %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    printf("pid=%d\n", child);

    struct sigaction sa = { .sa_handler = forward };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* scan stderr line by line for READY, copying everything to ERRLOG */
    char buf[65536], line[4096];
    size_t linelen = 0;
    int is_ready = 0;
    long long deadline = t0 + timeout_s * 1000000LL;
    for (;;) {
        if (!is_ready) {
            long long left_ms = (deadline - now_us()) / 1000;
            struct pollfd pfd = { .fd = p[0], .events = POLLIN };
            int r = left_ms > 0 ? poll(&pfd, 1, (int)left_ms) : 0;
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0) {
                fprintf(stderr, "spawn: no '%s' from %s within %d s\n", ready, cmd[0], timeout_s);
                printf("ready_us=-1\n");
                kill(child, SIGKILL);
                is_ready = -1;
            }
        }
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        long long t = now_us();
        if (write(logfd, buf, n) != n)
            perror("spawn: write log");
        for (ssize_t i = 0; i < n && !is_ready; i++) {
            if (buf[i] != '\n') {
                if (linelen < sizeof line - 1)
                    line[linelen++] = buf[i];
                continue;
            }
            line[linelen] = 0;
            linelen = 0;
            if (strstr(line, ready)) {
                is_ready = 1;
                /* ready_us last: run.sh takes it to mean both are there */
                printf("rss_kib=%ld\nready_us=%lld\n", vm_rss_kib(child), t - t0);
            }
        }
    }

    int status;
    struct rusage ru;
    while (wait4(child, &status, 0, &ru) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status))
        printf("exit=sig%d\n", WTERMSIG(status));
    else
        printf("exit=%d\n", WEXITSTATUS(status));
    printf("cpu_us=%lld\n",
           (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
               ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    return is_ready == 1 ? 0 : 1;
}
