"""``cryoensemble reweight`` as a library call: load, reweight, write atomically, record."""

from __future__ import annotations

import os
from pathlib import Path

from cryoensemble.io._outputs import atomic_output_dir, check_output_target, write_provenance
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.structure import load_structures, read_structure
from cryoensemble.workflows.reweight._config import ReweightConfig
from cryoensemble.workflows.reweight._outputs import write_outputs
from cryoensemble.workflows.reweight._reweight import ReweightResult, reweight

__all__ = ["run"]


def run(
    config: ReweightConfig,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> ReweightResult:
    """Reweight the configured structures against the particles and write the folder ``out``.

    The folder appears whole or not at all (see :func:`cryoensemble.workflows.reweight.
    write_outputs` for its files, plus provenance.json).

    Arguments:
        config: the validated configuration.
        out: the output folder.
        overwrite: replace an existing ``out`` (else refuse before any work).
        progress: reports the likelihood computation.
    """
    out = Path(out)
    check_output_target(out, overwrite)
    models = load_structures(config.structures, topology=config.topology)
    reference = None if config.align_to is None else read_structure(config.align_to)
    result = reweight(
        config.particles, models, align_to=reference, progress=progress, **config.reweight_options()
    )
    with atomic_output_dir(out, overwrite) as tmp:
        write_outputs(result, tmp, plots=config.plots)
        write_provenance(tmp, "reweight", config.model_dump(mode="json"), config.seed)
    return result
