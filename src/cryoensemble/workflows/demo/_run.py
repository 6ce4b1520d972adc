"""``cryoensemble demo``: the package's showcase on the bundled adenylate kinase, step by step,
written atomically into one folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryoensemble.io._outputs import atomic_output_dir
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.workflows.demo._steps import optimize_step, simulate_step

__all__ = ["DEMO_STEPS", "run"]

#: (name, step) pairs run in order; a step writes into its own sub-folder of the demo folder.
DEMO_STEPS: tuple[tuple[str, Callable[[Path, AbstractProgressMeter], list[str]]], ...] = (
    ("simulate", simulate_step),
    ("optimize", optimize_step),
)


def run(
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> list[str]:
    """Run every demo step into the folder ``out`` (whole or not at all).

    Arguments:
        out: the demo folder; it must not exist unless ``overwrite``.
        overwrite: replace an existing ``out``.
        progress: progress meter, passed to the steps (their tasks run one after the other).

    Returns:
        lines describing what each step found and where its outputs are (paths under ``out``).
    """
    out = Path(out)
    lines: list[str] = []
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        for _, step in DEMO_STEPS:
            lines += step(tmp, progress)
    return [line.replace(str(tmp), str(out)) for line in lines]
