"""``cryoensemble poses``: estimate particle poses by searching an SO(3) grid x shifts.

The options are :class:`cryoensemble.workflows.poses.PosesConfig`'s fields (see
:mod:`cryoensemble.cli._config_options`); a few keep their historical names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli._config_options import OptionSpec, OptionValues, config_command
from cryoensemble.cli.common import user_errors

_SPECS = {
    "particles": OptionSpec(("--particles", "-p")),
    "structures": OptionSpec(
        ("--structure", "-s"),
        help="Structure (PDB/mmCIF; a multi-model file gives all its models) or map (MRC, the "
        "particles' box and pixel size). Repeat for several.",
    ),
    "n_candidates": OptionSpec(("--candidates",)),
    "apply_ctf": OptionSpec(("--no-ctf",)),
}


@user_errors
@config_command("cryoensemble.workflows.poses:PosesConfig", specs=_SPECS)
def poses(
    given: OptionValues,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Estimate the pose of every particle against the STRUCTUREs (poses in the file are ignored).

    Writes DIR/particles.star (the input with rlnAngleRot/Tilt/Psi and rlnOriginX/YAngst
    replaced by the estimates for each particle's most likely structure, absolute image paths,
    cryoensemblePoseLogLikelihood, cryoensemblePoseMarginalLogLikelihood,
    cryoensemblePoseStructureIndex), report.json, angular_distribution.png, the
    pose-marginalised likelihood matrix (likelihood_matrix.npy, particle_indices.npy,
    likelihood_matrix.json) and provenance.json; with ground truth also angular_error.png and
    the error statistics.
    """
    from cryoensemble.io._config import validate_config
    from cryoensemble.workflows._progress import progress_meter
    from cryoensemble.workflows.poses import PosesConfig, poses_summary_lines, run

    config = validate_config(PosesConfig, given.values, "command line", given.labels)
    result = run(config, out, overwrite=overwrite, progress=progress_meter(not quiet))
    if not quiet:
        for line in poses_summary_lines(result.report, out):
            typer.echo(line)
