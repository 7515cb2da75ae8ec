"""CPython's side of procshare's benches: the same work through `multiprocessing`.

Run by impl/benches/*.rs as `python3 cpython.py WORK ARGS...`; each work prints
`key value` lines (rates per second, or times in seconds). Works:

  queue N SIZE        Queue, 1 producer process -> 1 consumer: `queue` msgs/s
                      (ints when SIZE is 0, else SIZE-byte bytes)
  pool N TRIPS RUNS   Pool(2): `map` items/s (default chunks), `apply` round trips/s
  start METHOD RUNS   start+join of a child that increments a Value: `start` median s
  value_lock N        2 processes incrementing a Value under its lock N times each:
                      `value_lock` ops/s
  manager N           2 processes appending N items each to a Manager().list():
                      `manager` appends/s
  queue_rtt N         round trip through two Queues (an echo process): `queue_rtt` median s
  pipe_rtt N          round trip through a duplex Pipe: `pipe_rtt` median s
  all QUICK           every work above at the table's sizes (QUICK=1: smaller)
"""
import multiprocessing as mp
import sys
import time


def _median(ts):
    ts = sorted(ts)
    return ts[len(ts) // 2]


def _prod(q, n, size):
    v = b"x" * size if size else 0
    for i in range(n):
        q.put(v if size else i)


def queue(n, size):
    # Timed from the first item's arrival (one more put first), as procshare's
    # rows: the throughput, not the process start.
    q = mp.Queue()
    p = mp.Process(target=_prod, args=(q, n + 1, size))
    p.start()
    q.get()
    t = time.perf_counter()
    for _ in range(n):
        q.get()
    d = time.perf_counter() - t
    p.join()
    print("queue", n / d)


def _inc(x):
    return x + 1


def pool(n, trips, runs):
    with mp.Pool(2) as pl:
        best = None
        for _ in range(runs):
            t = time.perf_counter()
            r = pl.map(_inc, range(n))
            d = time.perf_counter() - t
            assert len(r) == n
            best = d if best is None else min(best, d)
        print("map", n / best)
        best = None
        for _ in range(runs):
            t = time.perf_counter()
            for i in range(trips):
                pl.apply_async(_inc, (i,)).get()
            d = time.perf_counter() - t
            best = d if best is None else min(best, d)
        print("apply", trips / best)


def _work(v):
    with v.get_lock():
        v.value += 1


def start(method, runs):
    ctx = mp.get_context(method)
    v = ctx.Value("q", 0)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        p = ctx.Process(target=_work, args=(v,))
        p.start()
        p.join()
        ts.append(time.perf_counter() - t)
    print("start", _median(ts))


def _increments(v, ready, go, n):
    ready.release()
    go.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def value_lock(n):
    v = mp.Value("q", 0)
    ready, go = mp.Semaphore(0), mp.Event()
    ps = [mp.Process(target=_increments, args=(v, ready, go, n)) for _ in range(2)]
    for p in ps:
        p.start()
    for _ in ps:
        ready.acquire()
    t = time.perf_counter()
    go.set()
    for p in ps:
        p.join()
    d = time.perf_counter() - t
    assert v.value == 2 * n
    print("value_lock", 2 * n / d)


def _appender(lst, ready, go, n, base):
    lst.__len__()  # connect before the clock starts
    ready.release()
    go.wait()
    for i in range(n):
        lst.append(base + i)


def manager(n):
    with mp.Manager() as m:
        lst = m.list()
        ready, go = mp.Semaphore(0), mp.Event()
        ps = [mp.Process(target=_appender, args=(lst, ready, go, n, k << 32)) for k in range(2)]
        for p in ps:
            p.start()
        for _ in ps:
            ready.acquire()
        t = time.perf_counter()
        go.set()
        for p in ps:
            p.join()
        dt = time.perf_counter() - t
        assert len(lst) == 2 * n
        print("manager", 2 * n / dt)


def _queue_echo(a, b):
    while True:
        x = a.get()
        if x is None:
            return
        b.put(x)


def queue_rtt(n):
    a, b = mp.Queue(), mp.Queue()
    p = mp.Process(target=_queue_echo, args=(a, b))
    p.start()
    ts = []
    for i in range(n):
        t = time.perf_counter()
        a.put(i)
        b.get()
        ts.append(time.perf_counter() - t)
    a.put(None)
    p.join()
    print("queue_rtt", _median(ts))


def _pipe_echo(c):
    while True:
        x = c.recv()
        if x is None:
            return
        c.send(x)


def pipe_rtt(n):
    c, d = mp.Pipe()
    p = mp.Process(target=_pipe_echo, args=(d,))
    p.start()
    ts = []
    for i in range(n):
        t = time.perf_counter()
        c.send(i)
        c.recv()
        ts.append(time.perf_counter() - t)
    c.send(None)
    p.join()
    print("pipe_rtt", _median(ts))


def all_works(quick):
    k = 10 if quick else 1
    queue(200_000 // k, 0)
    sys.stdout.flush()
    # The 4 KiB row prints under its own key.
    q = mp.Queue()
    n = 20_000 // k
    p = mp.Process(target=_prod, args=(q, n + 1, 4096))
    p.start()
    q.get()
    t = time.perf_counter()
    for _ in range(n):
        q.get()
    d = time.perf_counter() - t
    p.join()
    print("queue_4k", n / d)
    pool(1_000_000 // k, 1000 // k, 1 if quick else 3)
    start("fork", 30 // (3 if quick else 1))
    value_lock(200_000 // k)
    manager(10_000 // k)
    queue_rtt(5_000 // k)
    pipe_rtt(5_000 // k)


def main():
    mp.set_start_method("fork")
    work, args = sys.argv[1], sys.argv[2:]
    if work == "queue":
        queue(int(args[0]), int(args[1]))
    elif work == "pool":
        pool(int(args[0]), int(args[1]), int(args[2]))
    elif work == "start":
        start(args[0], int(args[1]))
    elif work == "value_lock":
        value_lock(int(args[0]))
    elif work == "manager":
        manager(int(args[0]))
    elif work == "queue_rtt":
        queue_rtt(int(args[0]))
    elif work == "pipe_rtt":
        pipe_rtt(int(args[0]))
    elif work == "all":
        all_works(args[0] == "1")
    else:
        sys.exit("unknown work " + work)


if __name__ == "__main__":
    main()
