"""``cryoensemble optimize``: ensemble optimisation of walkers' structures and weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli.common import user_errors
from cryoensemble.errors import InputError
from cryoensemble.parallel import configure_host_devices


@user_errors
def optimize(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            help="YAML/TOML config: walkers (starting models), particles (STAR), reference, "
            "projector and the algorithm's settings (see docs/optimize.md).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    resume: Annotated[
        bool,
        typer.Option(help="Continue the run in OUT from its last checkpoint (same config)."),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    iterations: Annotated[
        int | None, typer.Option(help="Override the config's number of outer iterations.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Optimise M walkers (structures) and their weights against particle images under a
    physical prior (projected gradient descent; Silva-Sanchez et al. 2025).

    Writes into OUT: walker_<m>.pdb (same atom order as the inputs), walkers_traj_<m>.pdb,
    weights.json / weights.csv (posterior on all particles, as reweight), history.json /
    history.csv, loss.png, weights.png, rmsd.png (with ground_truth), optimize.log,
    config.yaml, provenance.json and checkpoint.npz (resume with --resume).
    """
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    configure_host_devices()  # every CPU core a JAX device (before JAX starts): batch split
    # imported here: JAX starts with the workflow, and `--help` stays fast
    from cryoensemble.workflows import optimize as workflow
    from cryoensemble.workflows._progress import progress_meter

    cfg = workflow.load_optimize_config(config, iterations=iterations)
    meter = progress_meter(cfg.progress and not quiet)
    result = workflow.run(cfg, out, resume=resume, overwrite=overwrite, progress=meter)
    for line in workflow.summary_lines(result):
        typer.echo(line)
    typer.echo(f"wrote {out}")
