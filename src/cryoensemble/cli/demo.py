"""``cryoensemble demo``: the package's showcase on the bundled example, step by step
(:mod:`cryoensemble.workflows.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli.common import user_errors


@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo output folder.")] = Path(
        "demo_output"
    ),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run the demonstration on the bundled adenylate kinase and print where the outputs are."""
    from cryoensemble.workflows._progress import progress_meter
    from cryoensemble.workflows.demo import run

    lines = run(out, overwrite=overwrite, progress=progress_meter(not quiet))
    typer.echo(f"demo finished; outputs in {out.absolute()}")
    for line in lines:
        typer.echo(line)
