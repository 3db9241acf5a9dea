/*
 * How fast can a waiter in another process learn that a lock was released?
 * The kernel mechanisms alone, with no library: a waiter blocked in
 * flock(2), and a waiter woken by the inotify event that a holder's
 * futimens(2) after its unlock produces (read, poll and epoll on the
 * inotify descriptor), plus the same through IN_ACCESS from a 1-byte
 * pread(2). "flock + record" is a waiter blocked in flock(2) that then
 * reads the last holder's record and writes its own (one pread, one
 * pwrite, as lockyard's default does) before it counts as holding: what a
 * freshly woken thread pays for that I/O. "flock + read" does the pread
 * alone; "flock + rec noatime" the pread and pwrite through a descriptor
 * opened O_NOATIME (the read then leaves the access time alone, which
 * relatime would otherwise update after every write, dirtying the inode);
 * "flock + mapped rec" reads and writes the record through a
 * shared mapping of the lock file instead (memcpy: the page is already in
 * the page cache, and a mapped write updates the file's times only when the
 * page is first dirtied after writeback, not on every write); "flock + vm
 * rec" copies through that mapping with process_vm_readv/writev, which
 * fail instead of raising SIGBUS if the file was truncated. "epoll +
 * record" and "epoll + vm rec" are the inotify waiter with the record.
 * "epoll thread hop" and "flock thread hop" put the wait on a second
 * thread of the waiter, which wakes the first (asleep on a futex, as an
 * executor's parked thread is): two wake-ups per hand-off. "close epoll"
 * (and its /proc/self/fd form, and "+ rec") announce the release by
 * opening and closing the file (IN_CLOSE_NOWRITE) instead of futimens.
 * The variants take turns, so all see the same machine state.
 *
 *   cc -O2 -pthread -o /tmp/wake_probe benches/wake_probe.c && /tmp/wake_probe 150
 *
 * Prints, per variant, the p50 and p90 of release -> waiter holds the lock,
 * and how long the holder's unlock and announcement calls took. Linux only.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    FLOCK, FLOCK_RECORD, FLOCK_READ, FLOCK_NOATIME, FLOCK_MAPPED, FLOCK_VM,
    READ, POLL, EPOLL, EPOLL_RECORD, EPOLL_VM, ACCESS, EPOLL_HOP, FLOCK_HOP, CLOSE_EPOLL, PROCFD_EPOLL, CLOSE_RECORD, VARIANTS
};
static const char *NAMES[VARIANTS] = {
    "blocked in flock", "flock + record", "flock + read", "flock + rec noatime",
    "flock + mapped rec", "flock + vm rec", "inotify read", "inotify poll",
    "inotify epoll", "epoll + record", "epoll + vm rec", "IN_ACCESS epoll",
    "epoll thread hop", "flock thread hop", "close epoll", "procfd close epoll",
    "close epoll + rec"};

struct shared {
    _Atomic int phase; /* 1: holder holds, 2: waiter waits, 3: waiter done, 9: exit */
    _Atomic int variant;
    long long released, acquired, unlocked, announced;
};

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int watched(const char *path, unsigned mask, int flags) {
    int fd = inotify_init1(IN_CLOEXEC | flags);
    inotify_add_watch(fd, path, mask);
    return fd;
}

/* The record through the shared mapping, copied by the kernel: a page
 * that is gone (the file truncated) is an error, not SIGBUS. */
static void vm_record(char *mapped, char *buf, char *record, size_t len) {
    pid_t me = getpid();
    struct iovec local = {buf, 512}, remote = {mapped, 512};
    process_vm_readv(me, &local, 1, &remote, 1, 0);
    struct iovec from = {record, len}, to = {mapped, len};
    process_vm_writev(me, &from, 1, &to, 1, 0);
}

/* The "hop" variants: the waiting task's thread sleeps on a futex, as an
 * executor's parked thread does, while another thread of the process
 * hears of the release (a reactor thread in epoll_wait, or a pool thread
 * blocked in flock) and wakes it: two wake-ups per hand-off. */
static _Atomic int hop_go, hop_done;
static int hop_fd, hop_ep;

static void futex_wait(_Atomic int *word, int seen) {
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, 0, 0, 0);
}

static void futex_wake(_Atomic int *word) {
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
}

static void *hop_thread(void *arg) {
    (void)arg;
    char buf[4096];
    for (;;) {
        int go;
        while ((go = hop_go) == 0) futex_wait(&hop_go, 0);
        hop_go = 0;
        if (go == FLOCK_HOP) {
            flock(hop_fd, LOCK_EX);
        } else {
            struct epoll_event e;
            epoll_wait(hop_ep, &e, 1, -1);
            read(e.data.fd, buf, sizeof buf);
        }
        hop_done = 1;
        futex_wake(&hop_done);
    }
    return 0;
}

static void waiter(const char *path, struct shared *s) {
    int fd = open(path, O_RDWR);
    int blocking = watched(path, IN_ATTRIB | IN_CLOSE, 0);
    int events = watched(path, IN_ATTRIB | IN_CLOSE, IN_NONBLOCK);
    int access = watched(path, IN_ACCESS, IN_NONBLOCK);
    int ep = epoll_create1(0), ep_access = epoll_create1(0);
    struct epoll_event in = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, events, &in);
    epoll_ctl(ep_access, EPOLL_CTL_ADD, access, &in);
    char buf[4096], record[245];
    memset(record, 'r', sizeof record);
    char *mapped = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int quiet = open(path, O_RDWR | O_NOATIME);
    hop_fd = fd;
    hop_ep = epoll_create1(0);
    struct epoll_event hop_in = {.events = EPOLLIN, .data.fd = events};
    epoll_ctl(hop_ep, EPOLL_CTL_ADD, events, &hop_in);
    pthread_t hop;
    pthread_create(&hop, 0, hop_thread, 0);
    for (;;) {
        while (s->phase != 1) {
            if (s->phase == 9) _exit(0);
            usleep(50);
        }
        int v = s->variant;
        while (read(events, buf, sizeof buf) > 0) {}
        while (read(access, buf, sizeof buf) > 0) {}
        s->phase = 2;
        for (;;) {
            if (v == FLOCK || v == FLOCK_RECORD || v == FLOCK_READ || v == FLOCK_NOATIME ||
                v == FLOCK_MAPPED || v == FLOCK_VM) {
                flock(fd, LOCK_EX);
                if (v == FLOCK_RECORD) {
                    pread(fd, buf, 512, 0);
                    pwrite(fd, record, sizeof record, 0);
                } else if (v == FLOCK_NOATIME) {
                    pread(quiet, buf, 512, 0);
                    pwrite(quiet, record, sizeof record, 0);
                } else if (v == FLOCK_READ) {
                    pread(fd, buf, 512, 0);
                } else if (v == FLOCK_MAPPED) {
                    memcpy(buf, mapped, 512);
                    memcpy(mapped, record, sizeof record);
                } else if (v == FLOCK_VM) {
                    vm_record(mapped, buf, record, sizeof record);
                }
                break;
            }
            if (v == EPOLL_HOP || v == FLOCK_HOP) {
                /* Hand the wait to the other thread, sleep until it is
                 * over, then (epoll) try the lock again. */
                if (v == EPOLL_HOP && flock(fd, LOCK_EX | LOCK_NB) == 0) break;
                hop_done = 0;
                hop_go = v;
                futex_wake(&hop_go);
                while (hop_done == 0) futex_wait(&hop_done, 0);
                if (v == FLOCK_HOP) break;
                continue;
            }
            if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                if (v == EPOLL_RECORD || v == CLOSE_RECORD) {
                    pread(fd, buf, 512, 0);
                    pwrite(fd, record, sizeof record, 0);
                } else if (v == EPOLL_VM) {
                    vm_record(mapped, buf, record, sizeof record);
                }
                break;
            }
            struct epoll_event e;
            struct pollfd p = {events, POLLIN, 0};
            switch (v) {
            case READ: read(blocking, buf, sizeof buf); break;
            case POLL: poll(&p, 1, -1); read(events, buf, sizeof buf); break;
            case EPOLL: case EPOLL_RECORD: case EPOLL_VM: case CLOSE_EPOLL: case PROCFD_EPOLL:
            case CLOSE_RECORD: epoll_wait(ep, &e, 1, -1); read(events, buf, sizeof buf); break;
            default: epoll_wait(ep_access, &e, 1, -1); read(access, buf, sizeof buf); break;
            }
        }
        s->acquired = now();
        flock(fd, LOCK_UN);
        struct pollfd p = {blocking, POLLIN, 0};
        while (poll(&p, 1, 0) > 0) read(blocking, buf, sizeof buf);
        s->phase = 3;
    }
}

int main(int argc, char **argv) {
    const char *path = "/tmp/wake_probe.lock";
    int n = argc > 1 ? atoi(argv[1]) : 150;
    int fd = open(path, O_CREAT | O_RDWR, 0644);
    /* IN_ACCESS needs a byte to read; the mapped record a page to land in. */
    ftruncate(fd, 4096);
    struct shared *s = mmap(0, sizeof *s, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (fork() == 0) waiter(path, s);
    long long *lat = calloc((size_t)n * VARIANTS, sizeof *lat);
    long long *un = calloc((size_t)n * VARIANTS, sizeof *un);
    long long *ann = calloc((size_t)n * VARIANTS, sizeof *ann);
    int count[VARIANTS] = {0};
    srand(1);
    for (int i = 0; i < n * VARIANTS; i++) {
        int v = i % VARIANTS;
        flock(fd, LOCK_EX);
        s->variant = v;
        s->phase = 1;
        while (s->phase != 2) usleep(20);
        /* Long enough for the waiter to be asleep. */
        struct timespec hold = {0, (1 + rand() % 20) * 1000000L};
        nanosleep(&hold, 0);
        s->released = now();
        flock(fd, LOCK_UN);
        s->unlocked = now();
        if (v == ACCESS) {
            char b;
            pread(fd, &b, 1, 0);
        } else if (v == CLOSE_EPOLL || v == CLOSE_RECORD) {
            close(open(path, O_RDONLY | O_CLOEXEC));
        } else if (v == PROCFD_EPOLL) {
            char self[64];
            snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
            close(open(self, O_RDONLY | O_CLOEXEC));
        } else if (v >= READ && v != FLOCK_HOP) {
            futimens(fd, NULL);
        }
        s->announced = now();
        while (s->phase != 3) usleep(20);
        int k = v * n + count[v]++;
        lat[k] = s->acquired - s->released;
        un[k] = s->unlocked - s->released;
        ann[k] = s->announced - s->unlocked;
        s->phase = 0;
    }
    s->phase = 9;
    wait(0);
    for (int v = 0; v < VARIANTS; v++) {
        long long *l = lat + v * n, *u = un + v * n, *a = ann + v * n;
        qsort(l, n, sizeof *l, by_value);
        qsort(u, n, sizeof *u, by_value);
        qsort(a, n, sizeof *a, by_value);
        printf("%-17s p50 %6.1f us  p90 %6.1f us   unlock %5.1f us  announce %5.1f us\n",
               NAMES[v], l[n / 2] / 1e3, l[n * 9 / 10] / 1e3, u[n / 2] / 1e3,
               a[n / 2] / 1e3);
    }
    unlink(path);
    return 0;
}
