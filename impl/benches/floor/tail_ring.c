// The floor of the queue ring's way of publishing small messages, for the
// table's `Queue<u64>` row: one producer and one consumer process, 16-byte
// chunks (an 8-byte header and a u64), the producer publishing each message by
// a release store of a shared `tail` word that the consumer polls (one pause
// per empty look, as the ring's first spin), the consumer freeing by a store of
// `head`. No framing check, no serde, no recovery. `locked` = 1 adds what the
// ring's robust locks cost: a locked CAS to take and a swap to release a
// private lock word per message on each side (the producer's swap after its
// `tail` store, as the ring's unlock).
//   cc -O2 -o /tmp/tail_ring impl/benches/floor/tail_ring.c && /tmp/tail_ring 20000000 0 && /tmp/tail_ring 20000000 1
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <time.h>
#define CHUNKS 65536 /* 1 MiB, as the ring's kept lap start */
struct line { _Atomic unsigned long w; char pad[56]; };
struct hdr { struct line prod, tail, cons, head; };
struct chunk { unsigned long header, value; };
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void lock(struct line*l,int on){ if(!on) return; unsigned long z=0;
  while(!atomic_compare_exchange_strong(&l->w,&z,1)) z=0; }
static void unlock(struct line*l,int on){ if(on) atomic_exchange(&l->w,0); }
int main(int argc,char**argv){
  long n=argc>1?atol(argv[1]):20000000; int locked=argc>2?atoi(argv[2]):0;
  struct hdr*h=mmap(0,sizeof(struct hdr),PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  struct chunk*c=mmap(0,sizeof(struct chunk)*CHUNKS,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  for(long i=0;i<CHUNKS;i++) c[i].header=0;  /* resident */
  double t=now();
  pid_t p=fork();
  if(p==0){ unsigned long tw=0, hw=0;
    for(long i=0;i<n;i++){
      lock(&h->prod,locked);
      while(tw-hw>=CHUNKS){ hw=atomic_load_explicit(&h->head.w,memory_order_acquire); if(tw-hw>=CHUNKS) __builtin_ia32_pause(); }
      c[tw%CHUNKS].header=8|(3ul<<32); c[tw%CHUNKS].value=i;
      atomic_store_explicit(&h->tail.w,++tw,memory_order_release);
      unlock(&h->prod,locked);
    } _exit(0); }
  unsigned long hw=0, tw=0, sum=0;
  for(long i=0;i<n;i++){
    lock(&h->cons,locked);
    while(tw==hw){ tw=atomic_load_explicit(&h->tail.w,memory_order_acquire); if(tw==hw) __builtin_ia32_pause(); }
    sum+=c[hw%CHUNKS].value+c[hw%CHUNKS].header;
    atomic_store_explicit(&h->head.w,++hw,memory_order_release);
    unlock(&h->cons,locked);
  }
  double d=now()-t; waitpid(p,0,0);
  printf("%s: %.2f M msgs/s (sum %lu)\n", locked?"with a lock per side":"no locks", n/d/1e6, sum);
}
