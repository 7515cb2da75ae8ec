// The floor for moving 4 KiB messages between two processes through shared
// memory, for the table's 4 KiB row: a single-producer single-consumer ring of
// 256 resident slots of 4 KiB, one copy in, one copy out, a sequence word per
// slot, both sides spinning (no lock, no wake-up, no framing, no recovery).
//   cc -O2 -o /tmp/spsc_4k impl/benches/floor/spsc_4k.c && /tmp/spsc_4k 200000 1
// A third argument of 1 adds what a locked ring pays per message on each side:
// a CAS lock before and an xchg unlock after (`/tmp/spsc_4k 50000 1 1`).
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <time.h>
#define SLOTS 256
#define SZ 4096
struct slot { _Atomic unsigned long seq; char pad[56]; char data[SZ]; };
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  long n = argc>1?atol(argv[1]):200000; int outcopy = argc>2?atoi(argv[2]):1;
  int locks = argc>3?atoi(argv[3]):0;
  struct lk{_Atomic unsigned w; char pad[60];} *L=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  struct slot*s=mmap(0,sizeof(struct slot)*SLOTS,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  for(int i=0;i<SLOTS;i++) s[i].seq=i;   // slot i free for message i
  char src[SZ]; memset(src,7,SZ);
  // Timed from the first message's arrival (one more sent first), as the
  // table's queue rows: the throughput, not the fork.
  double t=0;
  pid_t p=fork();
  if(p==0){ for(long i=0;i<=n;i++){ struct slot*x=&s[i%SLOTS];
      while(atomic_load_explicit(&x->seq,memory_order_acquire)!=(unsigned long)i) __builtin_ia32_pause();
      if(locks){unsigned z=0; while(!atomic_compare_exchange_strong(&L[0].w,&z,1)) z=0;}
      memcpy(x->data,src,SZ); atomic_store_explicit(&x->seq,i+1,memory_order_release);
      if(locks) atomic_exchange(&L[0].w,0);} _exit(0);}
  char *dst=malloc(SZ); long sum=0;
  for(long i=0;i<=n;i++){ struct slot*x=&s[i%SLOTS];
      while(atomic_load_explicit(&x->seq,memory_order_acquire)!=(unsigned long)i+1) __builtin_ia32_pause();
      if(locks){unsigned z=0; while(!atomic_compare_exchange_strong(&L[1].w,&z,1)) z=0;}
      if(outcopy){ memcpy(dst,x->data,SZ); sum+=dst[100]; } else sum+=x->data[100];
      atomic_store_explicit(&x->seq,i+SLOTS,memory_order_release);
      if(locks) atomic_exchange(&L[1].w,0);
      if(i==0) t=now();}
  double d=now()-t; waitpid(p,0,0);
  printf("%s: %.0f k msgs/s (%.2f GB/s) sum %ld\n", outcopy?"copy in + copy out":"copy in only", n/d/1e3, n*SZ/d/1e9, sum);
}
