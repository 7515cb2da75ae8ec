// A second floor for the table's 4 KiB row, with the ring's own layout: one
// producer process and one consumer process move 4 KiB messages through a
// 1 MiB byte ring of 4112-byte strides (a 4 KiB `ByteBuf` piece: 257 chunks
// of 16 bytes), head and tail counters in their own cache lines, both sides
// spinning, one copy in and one copy out (into a fresh `malloc`, as a decoded
// `ByteBuf`). Unlike `spsc_4k.c` (a sequence word per slot), nothing but the
// two counters crosses between the cores beside the data. Flags add, one by
// one, what the queue ring does per message, to measure what each costs:
//   hdr=1  an 8-byte piece header stored before the payload (the ring's
//          `len`/`flags` word; the consumer reads it for the length)
//   lk=1   the producer releases a lock (an xchg) after publishing; lk=3 the
//          consumer too (lk=2: the consumer only)
//   pf=1   the producer prefetches the next message's room for writing
//          (`prefetchw`) before its release, as `Ring::prefetch_next` does
//   off    the payload's offset in its stride (default 16, 8-byte aligned;
//          10 is where a `ByteBuf`'s body lies after the 8-byte piece header
//          and its 2-byte length, 8 to 15)
//   cc -O2 -o /tmp/ring_4k impl/benches/floor/ring_4k.c
//   /tmp/ring_4k 50000 [hdr] [lk] [pf] [off]     e.g. /tmp/ring_4k 50000 1 3 1 16
// Timed from the first message's arrival, as the table's queue rows.
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define SZ 4096
#define STRIDE 4112
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
struct line { _Atomic unsigned long v; char pad[56]; };
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 50000;
    int hdr = argc > 2 ? atoi(argv[2]) : 0, lk = argc > 3 ? atoi(argv[3]) : 0;
    int pf = argc > 4 ? atoi(argv[4]) : 0;
    long OFF = argc > 5 ? atol(argv[5]) : 16;
    if (OFF < 8 || OFF > 15) OFF = 16; /* room for the header, within the stride */
    long slots = (1 << 20) / STRIDE;
    struct line *H = mmap(0, 4 * sizeof(struct line), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0); /* tail, head, two locks */
    char *R = mmap(0, slots * STRIDE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(R, 0, slots * STRIDE);
    char *src = malloc(SZ);
    memset(src, 7, SZ);
    double t = 0;
    pid_t p = fork();
    if (p == 0) {
        for (long i = 0; i <= n; i++) {
            while (i - (long)atomic_load_explicit(&H[1].v, memory_order_acquire) >= slots - 1)
                __builtin_ia32_pause();
            char *d = R + (i % slots) * STRIDE + OFF;
            if (hdr) *(volatile unsigned long *)(d - 8) = SZ;
            memcpy(d, src, SZ);
            atomic_store_explicit(&H[0].v, i + 1, memory_order_release);
            if (pf) {
                char *nx = R + ((i + 1) % slots) * STRIDE + OFF;
                for (int j = 0; j < SZ; j += 64)
                    __asm__ volatile("prefetchw %0" ::"m"(*(const char *)(nx + j)));
            }
            if (lk & 1) atomic_exchange(&H[2].v, 0);
        }
        _exit(0);
    }
    long sum = 0;
    for (long i = 0; i <= n; i++) {
        while ((long)atomic_load_explicit(&H[0].v, memory_order_acquire) <= i) __builtin_ia32_pause();
        char *s = R + (i % slots) * STRIDE + OFF;
        long len = hdr ? *(volatile unsigned long *)(s - 8) : SZ;
        char *dst = malloc(len);
        memcpy(dst, s, len);
        sum += dst[100];
        free(dst);
        atomic_store_explicit(&H[1].v, i + 1, memory_order_release);
        if (lk & 2) atomic_exchange(&H[3].v, 0);
        if (i == 0) t = now();
    }
    double d = now() - t;
    waitpid(p, 0, 0);
    printf("ring_4k hdr=%d lk=%d pf=%d off=%ld: %.0f k msgs/s (%.2f GB/s) sum %ld\n", hdr, lk,
           pf, OFF, n / d / 1e3, n * SZ / d / 1e9, sum);
    return 0;
}
