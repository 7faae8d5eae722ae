"""What several kinds of test measure the same way: the traced memory peak of a call, and a call's result in a
forked child process (the compiled kernels' fork safety)."""
import gc
import multiprocessing
import tracemalloc


def peak_bytes(fn):
    "The peak of the memory Python traces (`tracemalloc`) while `fn()` runs."
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _put(queue, target):
    queue.put(target())


def in_forked_child(target, timeout=120):
    "`target()` run in a forked child (module-level, so the child can find it); fails if the child hangs or fails."
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_put, args=(queue, target))
    child.start()
    child.join(timeout)
    assert child.exitcode == 0, "the child hung or failed"
    return queue.get(timeout=5)
