"""Progress reporting for long computations, in the manner of Diffrax's progress meters.

A long-running library function takes ``progress: AbstractProgressMeter`` (default
:class:`NoProgressMeter`) and reports through it; it never prints or imports a terminal library
itself. The workflows pass ``cryoensemble.workflows._progress.progress_meter(enabled)`` (a live
rich bar, or nothing); :class:`TextProgressMeter` prints plain lines (e.g. for batch logs).

    with meter.task("likelihood matrix", total=n, unit="particles") as task:
        for batch in batches:
            ...
            task.advance(len(batch), rate="2100 pairs/s")
"""

from __future__ import annotations

import abc
import sys
import time
from typing import Any, TextIO

__all__ = ["AbstractProgressMeter", "NoProgressMeter", "ProgressTask", "TextProgressMeter"]


class ProgressTask(abc.ABC):
    """One task of a progress meter: a count of ``total`` units advanced as work is done."""

    @abc.abstractmethod
    def advance(self, n: int = 1, **fields: Any) -> None:
        """Record ``n`` more units done.

        Arguments:
            n: the number of units just completed.
            **fields: values shown beside the count (e.g. ``loss="0.31"``).
        """

    def update(self, completed: int, **fields: Any) -> None:
        """Set the count of completed units (default: advance by the difference).

        Arguments:
            completed: the total number of units completed so far.
            **fields: values shown beside the count.
        """
        self.advance(completed - getattr(self, "completed", 0), **fields)

    def __enter__(self) -> ProgressTask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 (optional hook)
        """End the task (called on leaving the ``with`` block)."""


class AbstractProgressMeter(abc.ABC):
    """Creates :class:`ProgressTask` objects for long computations."""

    @abc.abstractmethod
    def task(
        self, description: str, total: int | None, completed: int = 0, unit: str = ""
    ) -> ProgressTask:
        """A new task; use it as a context manager, which closes it.

        Arguments:
            description: what is being done (shown to the user).
            total: the number of units of work, or None if unknown.
            completed: units already done (e.g. when resuming).
            unit: the name of a unit (``"particles"``, ``"iterations"``).
        """


class _NoTask(ProgressTask):
    def __init__(self, completed: int) -> None:
        self.completed = completed

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.completed += n


class NoProgressMeter(AbstractProgressMeter):
    """Reports nothing (the library default)."""

    def task(
        self, description: str, total: int | None, completed: int = 0, unit: str = ""
    ) -> ProgressTask:
        return _NoTask(completed)


class _TextTask(ProgressTask):
    def __init__(self, meter: TextProgressMeter, description, total, completed, unit) -> None:
        self.meter, self.description, self.total, self.unit = meter, description, total, unit
        self.completed = completed
        self._last = -1.0
        self._start = time.monotonic()

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.completed += n
        now = time.monotonic()
        done = self.total is not None and self.completed >= self.total
        if done or now - self._last >= self.meter.interval:
            self._last = now
            total = "" if self.total is None else f"/{self.total}"
            extra = "".join(f" {k} {v}" for k, v in fields.items())
            elapsed = now - self._start
            print(
                f"{self.description}: {self.completed}{total} {self.unit}{extra} ({elapsed:.1f} s)",
                file=self.meter.stream,
                flush=True,
            )


class TextProgressMeter(AbstractProgressMeter):
    """Plain progress lines on ``stream``, at most one per ``interval`` per task, one at completion.

    Arguments:
        interval: the least time between two lines of a task, in seconds.
        stream: where to write (default: standard error).
    """

    def __init__(self, interval: float = 10.0, stream: TextIO | None = None) -> None:
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr

    def task(
        self, description: str, total: int | None, completed: int = 0, unit: str = ""
    ) -> ProgressTask:
        return _TextTask(self, description, total, completed, unit)
