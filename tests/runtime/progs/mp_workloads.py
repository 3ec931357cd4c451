"""multiprocessing workloads with deterministic output (run by tests/runtime/test_ipc_programs.py
natively and under `runpsc do`): Pool, Lock over a Value, Queue, Array, shared_memory,
ProcessPoolExecutor, Semaphore and Event, with the start method given as argv[1]."""
import concurrent.futures as cf
import multiprocessing as mp
import sys
from multiprocessing import shared_memory


def sq(x):
    return x * x


def add_many(lock, counter, n):
    for _ in range(n):
        with lock:
            counter.value += 1


def producer(q, n):
    for i in range(n):
        q.put(("item", i))
    q.put(None)


def shm_child(name):
    s = shared_memory.SharedMemory(name=name)
    s.buf[:5] = b"HELLO"
    s.close()


def main(method):
    ctx = mp.get_context(method)
    with ctx.Pool(2) as pool:
        print("pool map", pool.map(sq, range(8)))
        print("pool apply_async", pool.apply_async(sq, (12,)).get())
        print("pool imap", list(pool.imap(sq, range(5))))
    lock, counter = ctx.Lock(), ctx.Value("i", 0)
    ps = [ctx.Process(target=add_many, args=(lock, counter, 200)) for _ in range(3)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print("locked counter", counter.value, [p.exitcode for p in ps])
    q = ctx.Queue()
    p = ctx.Process(target=producer, args=(q, 50))
    p.start()
    items = []
    while (it := q.get()) is not None:
        items.append(it[1])
    p.join()
    print("queue", len(items), sum(items), p.exitcode)
    arr = ctx.Array("d", [0.5] * 4)
    print("array", list(arr))
    s = shared_memory.SharedMemory(create=True, size=4096)
    p = ctx.Process(target=shm_child, args=(s.name,))
    p.start()
    p.join()
    print("shared_memory", bytes(s.buf[:5]), p.exitcode)
    s.close()
    s.unlink()
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as ex:
        print("executor", list(ex.map(sq, range(6))), ex.submit(sq, 9).result())
    sem = ctx.Semaphore(2)
    sem.acquire()
    sem.acquire()
    print("semaphore nonblocking", sem.acquire(block=False), sem.acquire(timeout=0.01))
    ev = ctx.Event()
    p = ctx.Process(target=ev.set)
    p.start()
    p.join()
    print("event", ev.is_set())


if __name__ == "__main__":
    main(sys.argv[1])
