"""``cryoensemble reweight``: population weights of a structural ensemble from particle images.

The options are :class:`cryoensemble.workflows.reweight.ReweightConfig`'s fields (see
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
        help="Structure file (PDB/mmCIF; a multi-model file gives all its models; a "
        "trajectory needs --topology). Repeat for every structure.",
    ),
    "particles": OptionSpec(("--particles", "-p")),
    # comma-separated text: the configuration splits "1,2,0.5"
    "prior_counts": OptionSpec(
        help="Dirichlet prior counts per structure, comma-separated (default 0).", type=str
    ),
    "unknown_poses": OptionSpec(
        help="Ignore the STAR file's poses: marginalise each particle's likelihood over a pose "
        "search (SO(3) grid x shifts; see docs/pose_search.md). marginal/white only."
    ),
    "apply_ctf": OptionSpec(("--no-ctf",)),
    "exact": OptionSpec(
        ("--reference-marginal",),
        help="Marginal likelihood as -N log||r|| (drops the det(C^T C) term).",
    ),
}


@user_errors
@config_command("cryoensemble.workflows.reweight:ReweightConfig", specs=_SPECS)
def reweight(
    given: OptionValues,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fit the population weights of STRUCTUREs to the PARTICLES (known poses and CTFs).

    Writes weights.json (weights with credible intervals, in the order given), weights.csv,
    likelihood_matrix.npy (+ particle_indices.npy), posterior_samples.npy, weights.png,
    assignments.png and provenance.json.
    """
    from cryoensemble.io._config import validate_config
    from cryoensemble.workflows._progress import progress_meter
    from cryoensemble.workflows.reweight import ReweightConfig, run, summary_lines

    config = validate_config(ReweightConfig, given.values, "command line", given.labels)
    result = run(config, out, overwrite=overwrite, progress=progress_meter(not quiet))
    for line in summary_lines(result):
        typer.echo(line)
    typer.echo(f"wrote {out}")
