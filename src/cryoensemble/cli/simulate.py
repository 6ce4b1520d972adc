"""``cryoensemble simulate``: a particle dataset (STAR + MRC stacks) from atomic structures.

The options are :class:`cryoensemble.workflows.simulate.SimulateConfig`'s fields (see
:mod:`cryoensemble.cli._config_options`); a few keep their historical names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli._config_options import OptionSpec, OptionValues, config_command
from cryoensemble.cli.common import user_errors

_SPECS = {
    "structures": OptionSpec(
        ("--structure", "-s"),
        help="Structure file (PDB/mmCIF; first model). Repeat for several structures. "
        "Default: the bundled adenylate kinase (adk_open.pdb).",
    ),
    # repeatable or comma-separated: the configuration splits "0.7,0.3"
    "weights": OptionSpec(("--weights", "-w"), type=list[str]),
    "spherical_aberration": OptionSpec(("--cs",)),
    "apply_ctf": OptionSpec(("--no-ctf",)),
    # off by default now (the stacks are only a template); --no-check-stacks still accepted
    "check_stacks": OptionSpec(("--check-stacks/--no-check-stacks",)),
}


@user_errors
@config_command("cryoensemble.workflows.simulate:SimulateConfig", exclude=("center",), specs=_SPECS)
def simulate(
    given: OptionValues,
    no_center: Annotated[
        bool,
        typer.Option(
            "--no-center",
            help="Keep the files' coordinates: their origin at pixel N//2 (default: each "
            "structure's centre of mass at N//2).",
        ),
    ] = False,
    center_on_first: Annotated[
        bool,
        typer.Option(
            "--center-on-first",
            help="Centre every structure on the first structure's centre of mass (common frame).",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML or TOML file with any of these options (snake_case names, e.g. "
            "n_particles, spherical_aberration); flags given on the command line win."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output folder (must not exist unless --overwrite). Default: a new "
            "cryoensemble_simulation_<time> folder here.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Simulate cryo-EM particle images (RELION STAR + MRC stacks) from atomic structures.

    Images are the dimensionless phase contrast (interaction constant x CTF-filtered projected
    potential), protein bright. With no arguments: 1000 particles of the bundled adenylate kinase.
    """
    from cryoensemble.errors import ConfigError
    from cryoensemble.workflows._progress import progress_meter
    from cryoensemble.workflows.simulate import default_output_folder, load_config, run

    if no_center and center_on_first:
        raise ConfigError("--no-center and --center-on-first exclude each other")
    center = "none" if no_center else ("first" if center_on_first else None)
    cfg = load_config(config, labels=given.labels, center=center, **given.values)
    out = default_output_folder() if out is None else out
    summary = run(cfg, out, overwrite=overwrite, progress=progress_meter(not quiet))
    for line in summary.describe():
        typer.echo(line)
