"""The batch runner under the commands: order, workers that die, stopping on request."""

from __future__ import annotations

import os
import time

import pytest

from labelkit.cli._runner import Interrupt, run

# Work functions live at module level: worker processes find them by name.
_STATE: dict[str, int] = {}


def _init(offset: int) -> None:
    _STATE["offset"] = offset


def _slow_square(x: int) -> tuple[str, int]:
    time.sleep((x * 7 % 5) * 0.002)  # uneven durations, so completion order differs
    return ("ok", x * x + _STATE["offset"])


def _dies_on_13(x: int) -> tuple[str, int]:
    if x == 13:
        os._exit(1)  # what the OOM killer or a crash in a decoder looks like from outside
    time.sleep(0.002)
    return ("ok", x)


def _always_dies(x: int) -> tuple[str, int]:
    os._exit(1)


def _lost(x: int, message: str) -> tuple[str, str]:
    return ("lost", message)


@pytest.mark.parametrize("jobs", [1, 3])
def test_results_in_input_order(jobs):
    results = list(run(range(40), _slow_square, jobs=jobs, init=_init, initargs=(5,),
                       interrupt=Interrupt(), lost=_lost))
    assert results == [(x, ("ok", x * x + 5)) for x in range(40)]


def test_a_worker_that_dies_loses_only_its_file():
    cleaned: list[int] = []
    results = dict(run(range(30), _dies_on_13, jobs=2, init=_init, initargs=(0,),
                       interrupt=Interrupt(), lost=_lost, cleanup=cleaned.append))
    assert list(results) == list(range(30))
    assert results[13][0] == "lost" and "worker process died" in results[13][1]
    assert all(results[x] == ("ok", x) for x in results if x != 13)
    assert 13 in cleaned  # its partial output, if any, is removed


def test_gives_up_when_every_worker_dies():
    results = list(run(range(200), _always_dies, jobs=2, init=_init, initargs=(0,),
                       interrupt=Interrupt(), lost=_lost))
    assert [x for x, _ in results] == list(range(200))
    assert all(r[0] == "lost" for _, r in results)
    assert any("keep dying" in r[1] for _, r in results)


@pytest.mark.parametrize("jobs", [1, 2])
def test_stop_request_finishes_what_runs_and_starts_nothing_new(jobs):
    interrupt = Interrupt()
    seen = []
    for x, result in run(range(1000), _slow_square, jobs=jobs, init=_init, initargs=(0,),
                         interrupt=interrupt, lost=_lost):
        seen.append(x)
        assert result == ("ok", x * x)
        if len(seen) == 5:
            interrupt.stopped = True  # what the first Ctrl-C does
    assert 5 <= len(seen) < 30 and seen == sorted(seen)


def test_pool_that_breaks_between_wait_and_submit(monkeypatch):
    """A worker can die after the runner last looked: the next submit raises
    BrokenProcessPool. The item is not lost, the pool is replaced, every item comes back."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from labelkit.cli import _runner

    made = []

    class Flaky(ProcessPoolExecutor):
        submits = 0

        def submit(self, fn, *args, **kwargs):
            Flaky.submits += 1
            if Flaky.submits in (3, 11):  # once in the first window, once after a restart
                raise BrokenProcessPool("a child process terminated abruptly")
            return super().submit(fn, *args, **kwargs)

    def new_pool(jobs, init, initargs):
        made.append(1)
        return Flaky(jobs, initializer=_runner._worker_start, initargs=(init, initargs))

    monkeypatch.setattr(_runner, "_new_pool", new_pool)
    results = list(run(range(40), _slow_square, jobs=2, init=_init, initargs=(0,),
                       interrupt=Interrupt(), lost=_lost))
    assert [x for x, _ in results] == list(range(40))
    assert all(r == ("ok", x * x) for x, r in results)
    assert len(made) >= 2  # the refused pool was replaced
