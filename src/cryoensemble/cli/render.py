"""``cryoensemble render``: an atomic model as an MRC map (a reference for other programs).

The options are :class:`cryoensemble.workflows.render.RenderConfig`'s fields (see
:mod:`cryoensemble.cli._config_options`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli._config_options import OptionSpec, OptionValues, config_command
from cryoensemble.cli.common import user_errors


@user_errors
@config_command(
    "cryoensemble.workflows.render:RenderConfig",
    exclude=("structure",),
    specs={
        "center": OptionSpec(
            ("--no-center",),
            help="Keep the file's coordinates, origin at voxel N//2 (default: the centre of "
            "mass of all atoms at voxel N//2, as cryoensemble simulate).",
        )
    },
)
def render(
    given: OptionValues,
    structure: Annotated[Path, typer.Argument(help="Structure file (PDB/mmCIF).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output map (.mrc).")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Render an atomic model into a map of voxel-averaged potential (Volts), MRC float32.

    The map is (z, y, x) with the model placed exactly as ``cryoensemble simulate`` places it.
    """
    from cryoensemble.workflows.render import load_config, run

    config = load_config(labels=given.labels, structure=structure, **given.values)
    typer.echo(run(config, out, overwrite=overwrite).describe())
