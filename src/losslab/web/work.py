"""One bounded pool for the explorer's heavy work, off the event loop.

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
    def __init__(self, workers: int = 2, waiting: int = 8) -> None:
        if workers < 1 or waiting < 0:
            raise ValueError(f"a pool needs workers >= 1 and waiting >= 0, got {workers} and {waiting}")
        self.workers, self.waiting = workers, waiting
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="losslab-work")
        self._held = 0  # jobs running or waiting; only changed on the event loop, so no lock

    @property
    def held(self) -> int:
        return self._held

    def submit(self, job: Callable[[], T]) -> asyncio.Future[T]:
        """Start job() on a worker thread now; raises Busy when workers + waiting jobs are already held."""
        if self._held >= self.workers + self.waiting:
            raise Busy(f"the server is busy with {self._held} large computations; retry in a moment")
        loop = asyncio.get_running_loop()
        try:
            future = self._executor.submit(job)
        except RuntimeError:  # shut down: the server is stopping
            raise Busy("the server is stopping") from None
        self._held += 1
        # released when the job ends, not when its caller stops waiting: a thread cannot be interrupted
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return asyncio.wrap_future(future)

    async def run(self, job: Callable[[], T]) -> T:
        """job() on a worker thread, awaited; raises Busy as submit does."""
        return await self.submit(job)

    def _release(self) -> None:
        self._held -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
