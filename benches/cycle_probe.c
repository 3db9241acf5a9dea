/*
 * What one uncontended acquire + release of a strict lock costs in system
 * calls alone, with no library: the floor (flock, flock), and each
 * configuration of lockyard as the same calls on the same file, so that
 * lockyard's own figures can be read against the mechanism it must use.
 *
 *   cc -O2 -o /tmp/cycle_probe benches/cycle_probe.c && /tmp/cycle_probe [DIR]
 *
 * The variants take turns (7 rounds of 200,000 cycles each); the median
 * round is printed, in ns per cycle and as a ratio to the floor. Linux only.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { FLOOR, MARK_CHECK, RECORD, RECORD_ANNOUNCE, OLD_DEFAULT, OLD_NOMETA, VARIANTS };
static const char *NAMES[VARIANTS] = {
    "flock + unlock (floor: std, fs4, fd-lock)",
    "+ waiter-mark check (F_OFD_GETLK): record off",
    "+ record read + write: default",
    "default, a waiter marked (+ futimens announcement)",
    "before: pread, pwrite, pwrite, futimens (old default)",
    "before: futimens announcement (old record off)"};

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int marked(int fd) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                       .l_start = INT64_MAX - 1, .l_len = 1};
    fcntl(fd, F_OFD_GETLK, &fl);
    return fl.l_type != F_UNLCK;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/cycle_probe.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) { perror(path); return 1; }
    char record[290], buf[512];
    memset(record, 'r', sizeof record);
    pwrite(fd, record, sizeof record, 0);
    enum { N = 200000, ROUNDS = 7 };
    double ns[VARIANTS][ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < VARIANTS; k++) {
            int v = (k + r) % VARIANTS;
            double t = now_ns();
            for (int i = 0; i < N; i++) {
                flock(fd, LOCK_EX | LOCK_NB);
                if (v == RECORD || v == RECORD_ANNOUNCE || v == OLD_DEFAULT) {
                    pread(fd, buf, sizeof buf, 0);
                    pwrite(fd, record, sizeof record, 0);
                }
                if (v == OLD_DEFAULT) pwrite(fd, record, sizeof record, 0);
                flock(fd, LOCK_UN);
                if (v == MARK_CHECK || v == RECORD) marked(fd);
                if (v == RECORD_ANNOUNCE) { marked(fd); futimens(fd, NULL); }
                if (v == OLD_DEFAULT || v == OLD_NOMETA) futimens(fd, NULL);
            }
            ns[v][r] = (now_ns() - t) / N;
        }
    }
    double floor_ns = 0;
    for (int v = 0; v < VARIANTS; v++) {
        qsort(ns[v], ROUNDS, sizeof(double), cmp);
        double med = ns[v][ROUNDS / 2];
        if (v == FLOOR) floor_ns = med;
        printf("%-55s %7.0f ns  %5.2fx  (rounds %.0f-%.0f)\n", NAMES[v], med,
               med / floor_ns, ns[v][0], ns[v][ROUNDS - 1]);
    }
    unlink(path);
    return 0;
}
