"""``cryoensemble optimize``: ensemble optimisation of walkers' structures and weights."""

from __future__ import annotations

# Expose every CPU core as a JAX device before JAX starts (the batch is split over them).
from cryoensemble.parallel import configure_host_devices

configure_host_devices()

from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402

from cryoensemble.cli.common import user_errors  # noqa: E402


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
    from cryoensemble.errors import InputError
    from cryoensemble.workflows.optimize._config import load_optimize_config
    from cryoensemble.workflows.optimize._optimizer import run_optimize

    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if out.exists() and not (resume or overwrite):
        raise InputError(f"output {out} already exists; pass --resume to continue or --overwrite")
    cfg = load_optimize_config(config, iterations=iterations)
    _, result = run_optimize(
        cfg, out, resume=resume, overwrite=overwrite, progress=False if quiet else None
    )
    if result.reweight is not None:
        s = result.reweight.summary
        for m, name in enumerate(result.names):
            typer.echo(
                f"{name}: weight {s['mean'][m]:.4f} [{s['lower'][m]:.4f}, {s['upper'][m]:.4f}]"
            )
    last = result.history[-1]
    if "rmsd" in last:
        for m, row in enumerate(last["rmsd"]):
            typer.echo(f"walker_{m}: RMSD (A) " + " ".join(f"{v:.2f}" for v in row))
    typer.echo(f"wrote {out}")
