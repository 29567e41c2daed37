"""One bounded pool for the explorer's heavy work and its training runs, off the event loop.

The event loop answers small requests itself (parsing a few numbers and one loss call take well
under a millisecond). Work that could take longer (a large body to parse, a batch-pairwise loss
over thousands of rows) runs on a few worker threads, so small requests stay prompt beside it: the
heavy parts are NumPy calls, which release the GIL. Work is bounded twice: each request's size is
limited before it is accepted (``app.py``), and at most ``workers + waiting`` heavy jobs are held
at once; beyond that the server answers 503 with Retry-After instead of queueing without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """Every worker is busy and the waiting line is full."""


class WorkPool:
    """``workers`` threads for short heavy jobs (a large body, a big loss call: bounded by the request
    limits) and long ones (training runs: up to 120 s each). Short jobs may wait, ``waiting`` of them
    at most; long ones never wait and never take the last worker (``long_slots <= workers - 1``), so a
    short job always finds a worker within one short job's time, however many runs are open."""

    def __init__(self, workers: int = 3, waiting: int = 8, long_slots: int = 2) -> None:
        if workers < 1 or waiting < 0 or not 0 <= long_slots < workers:
            raise ValueError(f"a pool needs workers >= 1, waiting >= 0 and 0 <= long_slots < workers, got "
                             f"{workers}, {waiting} and {long_slots}")
        self.workers, self.waiting, self.long_slots = workers, waiting, long_slots
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="losslab-work")
        self._held = self._long = 0  # jobs running or waiting, long jobs; only changed on the event loop: no lock

    @property
    def held(self) -> int:
        return self._held

    def submit(self, job: Callable[[], T], *, long: bool = False) -> asyncio.Future[T]:
        """Start job() on a worker thread; raises Busy when the pool holds as many jobs of its kind as it may."""
        if long and self._long >= self.long_slots:
            raise Busy(f"every training slot is in use ({self._long} running); stop one or retry in a moment")
        if not long and self._held - self._long >= self.workers - self._long + self.waiting:
            raise Busy(f"the server is busy with {self._held} large computations; retry in a moment")
        loop = asyncio.get_running_loop()
        try:
            future = self._executor.submit(job)
        except RuntimeError:  # shut down: the server is stopping
            raise Busy("the server is stopping") from None
        self._held += 1
        self._long += long
        # released when the job ends, not when its caller stops waiting: a thread cannot be interrupted
        future.add_done_callback(lambda _: _call_soon(loop, self._release, long))
        return asyncio.wrap_future(future)

    async def run(self, job: Callable[[], T]) -> T:
        """job() on a worker thread, awaited; raises Busy as submit does."""
        return await self.submit(job)

    def _release(self, long: bool) -> None:
        self._held -= 1
        self._long -= long

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    """fn(*args) on the loop, from any thread; nothing once the loop is closed (the server has stopped)."""
    if not loop.is_closed():
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed between the check and the call
            pass
