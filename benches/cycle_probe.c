/*
 * What one uncontended acquire + release of a strict lock costs in system
 * calls alone, with no library: the floor (flock, flock), and each
 * configuration of lockyard as the same calls on the same file, so that
 * lockyard's own figures can be read against the mechanism it must use.
 *
 *   cc -O2 -o /tmp/cycle_probe benches/cycle_probe.c && /tmp/cycle_probe [DIR]
 *
 * "the record's own work" adds what the record format asks of any writer
 * beyond the two calls, in plain C: recognise the bytes read as the ones
 * written last, read the clock, format the changing lines (two times and
 * the token) and seal them with the format's FNV-1a checksum, a serial
 * chain of one multiply per byte.
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

enum { FLOOR, MARK_CHECK, RECORD, RECORD_FORMATTED, RECORD_ANNOUNCE, OLD_DEFAULT, OLD_NOMETA,
       VARIANTS };
static const char *NAMES[VARIANTS] = {
    "flock + unlock (floor: std, fs4, fd-lock)",
    "+ waiter-mark check (F_OFD_GETLK): record off",
    "+ record read + write: default",
    "default, + the record's own work (format, checksum)",
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

static char *decimal(char *out, uint64_t v) {
    char tmp[20];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *out++ = tmp[--n];
    return out;
}

/* The record's changing lines after its fixed head, sealed: what a writer
 * must compute on every acquisition. Returns the record's length. */
static size_t format_record(char *record, size_t head, uint64_t *token) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    uint64_t micros = (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
    *token = *token + 1 > micros ? *token + 1 : micros;
    char *p = record + head, *tail = p;
    for (int line = 0; line < 2; line++) {
        memcpy(p, line ? "\nrenewed " : "acquired ", line ? 9 : 9);
        p += 9;
        p = decimal(p, (uint64_t)t.tv_sec);
        *p++ = '.';
        char nanos[9];
        uint64_t ns = (uint64_t)t.tv_nsec;
        for (int i = 8; i >= 0; i--) { nanos[i] = (char)('0' + ns % 10); ns /= 10; }
        memcpy(p, nanos, 9);
        p += 9;
    }
    memcpy(p, "\nttl -\nowner -\ntoken ", 22);
    p = decimal(p + 22, *token);
    *p++ = '\n';
    uint64_t h = 0xcbf29ce484222325ULL;
    for (char *c = tail; c < p; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
    static const char hex[] = "0123456789abcdef";
    memcpy(p, "check ", 6);
    p += 6;
    for (int i = 15; i >= 0; i--) p[15 - i] = hex[(h >> (i * 4)) & 15];
    p += 16;
    *p++ = '\n';
    return (size_t)(p - record);
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
    char record[512], buf[512];
    memset(record, 'r', sizeof record);
    /* The head lines (PID to start time) are formatted once per process. */
    size_t head = 150, len = 290;
    uint64_t token = 0;
    pwrite(fd, record, 290, 0);
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
                    pwrite(fd, record, 290, 0);
                }
                if (v == RECORD_FORMATTED) {
                    ssize_t n = pread(fd, buf, sizeof buf, 0);
                    /* Its own last record: the token is known. */
                    if (n != (ssize_t)len || memcmp(buf, record, len) != 0) token++;
                    len = format_record(record, head, &token);
                    pwrite(fd, record, len, 0);
                }
                if (v == OLD_DEFAULT) pwrite(fd, record, 290, 0);
                flock(fd, LOCK_UN);
                if (v == MARK_CHECK || v == RECORD || v == RECORD_FORMATTED) marked(fd);
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
