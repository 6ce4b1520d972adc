"""``cryoensemble demo``: the package's showcase on the bundled example, step by step.

Each step is a function ``step(out: Path) -> list[str]`` that writes into its own sub-folder of the
demo folder and returns lines describing its outputs; later features add steps to ``DEMO_STEPS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli.common import user_errors

# The demo simulates with the command's defaults; make the CPU cores JAX devices first.
from cryoensemble.cli.simulate import print_summary, run_simulation  # noqa: F401  (configures host devices)
from cryoensemble.workflows.demo._optimize import run_optimize_demo


def simulate_step(out: Path, quiet: bool = False) -> list[str]:
    """Simulate 1000 particles of the bundled adenylate kinase with the default settings."""
    from cryoensemble.workflows.simulate._simulate import load_config

    summary = run_simulation(load_config(), out / "simulation", overwrite=False, quiet=quiet)
    return [
        f"simulation ({summary.n_particles} particles, {summary.images_per_s:.0f} images/s):",
        f"  particles:    {summary.star_path}",
        f"  gallery:      {out / 'simulation' / 'gallery.png'}",
        f"  ground truth: {out / 'simulation' / 'ground_truth.csv'}",
    ]


#: (name, step) pairs run in order by ``cryoensemble demo``.
DEMO_STEPS: list[tuple[str, Callable[..., list[str]]]] = [
    ("simulate", simulate_step),
    ("optimize", run_optimize_demo),
]


@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo output folder.")] = Path(
        "demo_output"
    ),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run the demonstration on the bundled adenylate kinase and print where the outputs are."""
    from cryoensemble.io._outputs import atomic_output_dir, check_output_target

    check_output_target(out, overwrite)
    lines: list[str] = []
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        for name, step in DEMO_STEPS:
            typer.echo(f"demo step: {name}", err=True)
            lines += [line.replace(str(tmp), str(out)) for line in step(tmp, quiet=quiet)]
    typer.echo(f"demo finished; outputs in {out.absolute()}")
    for line in lines:
        typer.echo(line)
