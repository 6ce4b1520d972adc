"""``cryoensemble poses`` as a library call: load the particles and references, search, write the
outputs atomically with provenance."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cryoensemble.io import ParticleDataset
from cryoensemble.io._outputs import atomic_output_dir, check_output_target, write_provenance
from cryoensemble.posesearch import PoseSearchResult, pose_search
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.workflows.poses._config import PosesConfig
from cryoensemble.workflows.poses._outputs import (
    input_poses_as_truth,
    poses_report,
    poses_table,
    write_poses_outputs,
)
from cryoensemble.workflows.poses._references import load_references

__all__ = ["PosesResult", "run"]


@dataclasses.dataclass
class PosesResult:
    """What :func:`run` computed.

    Arguments:
        search: the pose search (poses, likelihoods, settings).
        report: the report.json record (see :func:`~cryoensemble.workflows.poses.poses_report`).
    """

    search: PoseSearchResult
    report: dict


def run(
    config: PosesConfig,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> PosesResult:
    """Estimate the pose of every particle against the configured structures; write ``out``.

    The folder (particles.star, report.json, likelihood_matrix.npy + particle_indices.npy +
    likelihood_matrix.json, the plots, provenance.json) appears whole or not at all. The poses
    in the input file are ignored by the search (and compared with, as ground truth, per
    ``config.truth``).

    Arguments:
        config: the validated configuration.
        out: the output folder.
        overwrite: replace an existing ``out`` (else refuse before any work).
        progress: reports the particles searched.
    """
    out = Path(out)
    check_output_target(out, overwrite)
    search = config.search_config()
    ds = ParticleDataset(
        config.particles, invert_contrast=config.invert_contrast, pixel_size=config.pixel_size
    )
    truth = input_poses_as_truth(ds.table, config.truth)
    refs = load_references(
        config.structures, ds.box_size, ds.pixel_size, config.selection, config.center
    )
    result = pose_search(ds, refs.references, search, progress=progress)
    tables = poses_table(ds.table, result, refs.names, truth)
    report = poses_report(ds, refs, result, search, tables[1], truth)
    with atomic_output_dir(out, overwrite) as tmp:
        write_poses_outputs(tmp, tables, result, refs, report, plots=config.plots)
        write_provenance(tmp, "poses", config.model_dump(mode="json"), seed=None)
    return PosesResult(result, report)
