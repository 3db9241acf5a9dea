/*
 * The peers benchmark's W3 (4 processes x 500 read+1+write increments of a
 * data file under the lock, threads blocked in flock(2)) as bare system
 * calls, with no library: once with flock alone (the floor), once with
 * what lockyard's default adds to every increment (read the last record,
 * write ours, check for waiter marks after unlocking). The ratio between
 * the two is the least a lock that keeps a holder record can cost on this
 * workload, however its waiters wait.
 *
 *   cc -O2 -o /tmp/contention_probe benches/contention_probe.c && /tmp/contention_probe [DIR]
 *
 * The variants take turns over 15 rounds; medians are printed, with how
 * often the lock changed process ("runs"). Linux only.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { P = 4, M = 500, ROUNDS = 15 };
enum { BARE, RECORD, VARIANTS };
static const char *NAMES[VARIANTS] = {"flock alone (floor)", "flock + record read/write + mark check"};

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void worker(const char *lock, const char *data, int id, int v, long long start) {
    int fd = open(lock, O_RDWR), dfd = open(data, O_RDWR);
    char record[245], buf[512];
    memset(record, 'r', sizeof record);
    while (now() < start) {}
    for (int i = 0; i < M; i++) {
        flock(fd, LOCK_EX);
        if (v == RECORD) {
            pread(fd, buf, sizeof buf, 0);
            pwrite(fd, record, sizeof record, 0);
        }
        long long w[3];
        pread(dfd, w, sizeof w, 0);
        if (w[1] != id) w[2]++;
        w[0]++;
        w[1] = id;
        pwrite(dfd, w, sizeof w, 0);
        flock(fd, LOCK_UN);
        if (v == RECORD) {
            struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                               .l_start = INT64_MAX - 1, .l_len = 1};
            fcntl(fd, F_OFD_GETLK, &fl);
        }
    }
    _exit(0);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char lock[4096], data[4096];
    snprintf(lock, sizeof lock, "%s/contention_probe.lock", dir);
    snprintf(data, sizeof data, "%s/contention_probe.data", dir);
    close(open(lock, O_CREAT | O_RDWR, 0644));
    double wall[VARIANTS][ROUNDS], runs[VARIANTS][ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < VARIANTS; k++) {
            int v = (k + r) % VARIANTS;
            int dfd = open(data, O_CREAT | O_RDWR | O_TRUNC, 0644);
            long long zero[3] = {0, -1, 0};
            pwrite(dfd, zero, sizeof zero, 0);
            long long start = now() + 20000000LL;
            for (int i = 0; i < P; i++)
                if (fork() == 0) worker(lock, data, i, v, start);
            for (int i = 0; i < P; i++) wait(0);
            long long w[3];
            pread(dfd, w, sizeof w, 0);
            close(dfd);
            if (w[0] != P * M) { fprintf(stderr, "lost updates: %lld\n", w[0]); return 1; }
            wall[v][r] = (now() - start) / 1e6;
            runs[v][r] = (double)w[2];
        }
    }
    double floor_ms = 0;
    for (int v = 0; v < VARIANTS; v++) {
        qsort(wall[v], ROUNDS, sizeof(double), by_value);
        qsort(runs[v], ROUNDS, sizeof(double), by_value);
        double med = wall[v][ROUNDS / 2];
        if (v == BARE) floor_ms = med;
        printf("%-40s %6.2f ms  %5.2fx  runs %4.0f  (rounds %.2f-%.2f ms)\n", NAMES[v], med,
               med / floor_ms, runs[v][ROUNDS / 2], wall[v][0], wall[v][ROUNDS - 1]);
    }
    unlink(lock);
    unlink(data);
    return 0;
}
