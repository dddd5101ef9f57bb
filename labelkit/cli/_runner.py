"""Run one function over many files, here or in worker processes, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, TypeVar

from ._common import internal_error_text

__all__ = ["Interrupt", "run"]

T = TypeVar("T")
R = TypeVar("R")

_WINDOW_PER_WORKER = 4  # tasks in flight per worker: keeps workers busy, memory bounded
_POLL_SECONDS = 0.1  # how often the progress bar and the Ctrl-C flag are looked at
_MAX_RESTARTS = 3  # pools dying with several files in flight, none done since, before giving up
_LOST = ("a worker process died while working on this file (killed, out of memory, or a crash "
         "in a decoder); it was not written")


class Interrupt:
    """SIGINT handling for a batch: the first Ctrl-C asks to stop after the files in progress
    (so nothing is left half-written), a second one stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.stopped = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        # Only a flag: printing from a signal handler can collide with the main thread's writes.
        self.stopped = True

    def __enter__(self) -> "Interrupt":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        except ValueError:  # not the main thread: Ctrl-C is not ours to handle
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


def run(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    jobs: int,
    init: Callable[..., None],
    initargs: tuple = (),
    interrupt: Interrupt,
    lost: Callable[[T, str], R],
    cleanup: Callable[[T], None] = lambda item: None,
    tick: Callable[[], None] = lambda: None,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, work(item))`` in the order of ``items``.

    ``work`` must catch its own exceptions and return a result; ``init(*initargs)`` runs once
    per worker (in this process when ``jobs`` is 1) to build what ``work`` needs. When
    ``interrupt.stopped`` turns true, no new item starts; items in progress finish and are
    yielded. A worker that dies turns its items into ``lost(item, message)`` after
    ``cleanup(item)`` (remove partial output); the same happens on a second Ctrl-C, which then
    propagates as KeyboardInterrupt.
    """
    if jobs <= 1:
        return _run_here(items, work, init, initargs, interrupt, cleanup)
    return _run_pool(items, work, jobs, init, initargs, interrupt, lost, cleanup, tick)


def _run_here(
    items: Iterable[T],
    work: Callable[[T], R],
    init: Callable[..., None],
    initargs: tuple,
    interrupt: Interrupt,
    cleanup: Callable[[T], None],
) -> Iterator[tuple[T, R]]:
    init(*initargs)
    for item in items:
        if interrupt.stopped:
            return
        try:
            result = work(item)
        except KeyboardInterrupt:
            cleanup(item)
            raise
        yield item, result


def _worker_start(init: Callable[..., None], initargs: tuple) -> None:
    # The terminal sends Ctrl-C to the whole process group; the parent decides when workers
    # stop, so that none dies halfway through writing a file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init(*initargs)


def _new_pool(jobs: int, init: Callable[..., None], initargs: tuple) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(jobs, initializer=_worker_start, initargs=(init, initargs))


def _kill(pool: ProcessPoolExecutor) -> None:
    # The executor has no public way to stop a running task; its process table is the only
    # handle on the workers. SIGTERM: they ignore SIGINT on purpose.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(2)
    pool.shutdown(wait=False, cancel_futures=True)


def _run_pool(
    items: Iterable[T],
    work: Callable[[T], R],
    jobs: int,
    init: Callable[..., None],
    initargs: tuple,
    interrupt: Interrupt,
    lost: Callable[[T, str], R],
    cleanup: Callable[[T], None],
    tick: Callable[[], None],
) -> Iterator[tuple[T, R]]:
    queue = enumerate(items)
    # Files in flight when a worker died. They are tried again one at a time, so the file that
    # kills a worker is known and lost alone, and the others are not lost with it.
    retry: list[tuple[int, Any]] = []
    solo = False  # the one file in flight is a retry
    pool = _new_pool(jobs, init, initargs)
    pending: dict[Future, tuple[int, Any]] = {}
    ready: dict[int, tuple[Any, Any]] = {}  # finished, waiting for earlier items to be yielded
    next_index = 0
    exhausted = broken = gave_up = False
    breaks = 0  # pools that died with several files in flight since the last success
    try:
        while True:
            if interrupt.stopped:
                for future in [f for f in pending if f.cancel()]:  # queued, never started
                    del pending[future]
            elif broken and not pending:
                pool.shutdown(wait=True)
                if breaks > _MAX_RESTARTS:
                    gave_up = True
                    break
                pool, broken = _new_pool(jobs, init, initargs), False
            if not interrupt.stopped and not broken:
                try:
                    if retry:
                        if not pending:
                            entry = retry[0]
                            pending[pool.submit(work, entry[1])] = entry
                            retry.pop(0)
                            solo = True
                    else:
                        solo = False
                        while not exhausted and \
                                len(pending) + len(ready) < jobs * _WINDOW_PER_WORKER:
                            entry = next(queue, None)
                            if entry is None:
                                exhausted = True
                                break
                            try:
                                pending[pool.submit(work, entry[1])] = entry
                            except BrokenProcessPool:
                                retry.append(entry)  # never started: try it again
                                raise
                except BrokenProcessPool:
                    # A worker died after the last wait() and before this submit: the pool
                    # refuses new work. Same as a death noticed through a future.
                    breaks += 1
                    broken = True
            if not pending:
                break
            done, _ = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            tick()
            for future in done:
                index, item = pending.pop(future)
                try:
                    ready[index] = (item, future.result())
                    breaks = 0
                except BrokenProcessPool:
                    cleanup(item)
                    if solo:  # alone in its worker: this file is what kills it
                        ready[index] = (item, lost(item, _LOST))
                    else:
                        breaks += not broken
                        retry.append((index, item))
                    broken = True
                except Exception as exc:  # e.g. a result that could not be pickled: a bug
                    ready[index] = (item, lost(item, f"internal error: {internal_error_text(exc)}"))
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1
    except (KeyboardInterrupt, GeneratorExit) as exc:
        # KeyboardInterrupt: a second Ctrl-C while waiting here. GeneratorExit after a stop
        # request: it struck in the caller's loop. Either way the user wants out now.
        if isinstance(exc, KeyboardInterrupt) or interrupt.stopped:
            _kill(pool)
            for _, item in pending.values():
                cleanup(item)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a no-op wait once killed
    if gave_up:
        for index, item in [*retry, *queue]:
            ready[index] = (item, lost(item, "not processed: worker processes keep dying"))
    for index in sorted(ready):  # after a stop, items that were cancelled leave gaps
        yield ready.pop(index)
