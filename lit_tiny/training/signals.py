"""Stop requests from the scheduler: SIGTERM (preemption, ``scancel``, the time limit, ``kill -TERM -PGID``)
and SIGUSR1 (``#SBATCH --signal=USR1@90``, sent ahead of the limit).

Each training process records the request (:class:`StopRequest`); the loop reduces the flag over the ranks
once per step, so every rank saves the same step and exits 0. Dataloader workers do not die of either
signal (:class:`WorkerGuard`): a scheduler signals every process of the job, and a worker that died of it
would crash the loop before the save. Once their loader is done (or the process exits) the guard is
released, and the SIGTERM with which PyTorch and multiprocessing end leftover workers ends them again.
The signals are held back while workers start (:func:`held_back`), so none slips in before the guard.
"""

from __future__ import annotations

import atexit
import os
import signal
from contextlib import contextmanager
from typing import Iterator, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Set by SIGTERM or SIGUSR1 in this process; ``name`` says which arrived first."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum

    @property
    def is_set(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "none"


@contextmanager
def held_back() -> Iterator[None]:
    """Block the stop signals in this thread (and in processes forked meanwhile); deliver them after."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WorkerGuard:
    """``worker_init_fn`` of the training loader: while the guard holds, the stop signals do not end a
    worker; after :meth:`release` (its loader finished, or the process is exiting) they do."""

    def __init__(self) -> None:
        import multiprocessing

        self.released = multiprocessing.get_context().Event()
        atexit.register(self.release)

    def __call__(self, worker_id: int) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def _handle(self, signum, frame) -> None:
        if self.released.is_set():
            os._exit(0)

    def release(self) -> None:
        self.released.set()
        atexit.unregister(self.release)
