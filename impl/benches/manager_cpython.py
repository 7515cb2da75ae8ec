"""CPython's manager list: two processes append N items each; prints appends/s.

Run by impl/benches/manager.rs (python3 manager_cpython.py N)."""
import multiprocessing as mp
import sys
import time


def worker(lst, ready, go, n, base):
    lst.__len__()  # connect before the clock starts
    ready.release()
    go.wait()
    for i in range(n):
        lst.append(base + i)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    mp.set_start_method("fork")
    with mp.Manager() as m:
        lst = m.list()
        ready = mp.Semaphore(0)
        go = mp.Event()
        ps = [mp.Process(target=worker, args=(lst, ready, go, n, k << 32)) for k in range(2)]
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
        print(2 * n / dt)


if __name__ == "__main__":
    main()
