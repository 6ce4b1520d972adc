"""The live progress bar of the command line (rich), behind the library's progress interface."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter, ProgressTask

__all__ = ["RichProgressMeter", "progress_meter"]


class _RichTask(ProgressTask):
    def __init__(self, description: str, total: int | None, completed: int, unit: str) -> None:
        self.completed = completed
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(description, total=total, completed=completed, info="")
        self._progress.start()

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.completed += n
        info = "  ".join(f"{k} {v}" for k, v in fields.items())
        self._progress.update(self._task, completed=self.completed, info=info)

    def close(self) -> None:
        self._progress.stop()


class RichProgressMeter(AbstractProgressMeter):
    """A live bar on standard error per task: count, fields (loss, rate, ...), elapsed and left."""

    def task(
        self, description: str, total: int | None, completed: int = 0, unit: str = ""
    ) -> ProgressTask:
        return _RichTask(description, total, completed, unit)


def progress_meter(enabled: bool) -> AbstractProgressMeter:
    """The command line's meter: a rich bar when ``enabled``, else none."""
    return RichProgressMeter() if enabled else NoProgressMeter()
