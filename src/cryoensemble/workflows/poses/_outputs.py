"""The outputs of a pose search: the particle STAR file with the estimated poses, the error
statistics against the input poses, the report and the files of ``cryoensemble poses``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from jaxtyping import ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.inference import fit_weights_em
from cryoensemble.io import (
    ParticleDataset,
    ParticleTable,
    format_image_name,
    parse_image_name,
    resolve_image_path,
    save_likelihood_matrix,
    write_particles,
)
from cryoensemble.pose import grid_resolution, hopf_grid
from cryoensemble.posesearch import PoseSearchConfig, PoseSearchResult, angular_errors
from cryoensemble.workflows.poses._plots import plot_angular_distribution, plot_angular_error
from cryoensemble.workflows.poses._references import References

__all__ = [
    "error_summary",
    "grid_levels",
    "input_poses_as_truth",
    "poses_report",
    "poses_table",
    "poses_summary_lines",
    "write_poses_outputs",
]

_ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")

#: Levels with more rotations are not measured (the nearest-neighbour search would be slow).
_MAX_MEASURED = 40000


def input_poses_as_truth(table: ParticleTable, mode: str = "auto") -> bool:
    """Whether the input file's rlnAngleRot/Tilt/Psi are taken as the ground truth.

    Arguments:
        table: the input particles.
        mode: "input" (always; the columns must exist), "none" (never) or "auto" (when the three
            angle columns are present and not all zero, as in files written by ``cryoensemble
            simulate``; a file without angles reads as all zeros).
    """
    if mode not in ("auto", "input", "none"):
        raise InputError(f"--truth must be auto, input or none, got {mode!r}")
    if mode == "none":
        return False
    present = all(c in table.particles.columns for c in _ANGLES)
    if mode == "input":
        if not present:
            raise InputError(f"{table.path}: --truth input needs the columns {', '.join(_ANGLES)}")
        return True
    return present and bool(np.any(table.particles[list(_ANGLES)].to_numpy(np.float64) != 0))


def _absolute_image_names(names: pd.Series, star: Path) -> list[str]:
    """Image names with absolute stack paths, so the new file reads from anywhere."""
    cache: dict[str, str] = {}
    out = []
    for s in names:
        i, stack = parse_image_name(s)
        if stack not in cache:
            cache[stack] = str(resolve_image_path(stack, star))
        out.append(format_image_name(i, cache[stack]))
    return out


def poses_table(
    table: ParticleTable, result: PoseSearchResult, names: Sequence[str], truth: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(optics, particles): the input table with the estimated poses.

    For each particle, the pose for its most likely structure goes in the RELION columns
    (rlnAngle*, degrees; rlnOriginX/YAngst, Angstrom), with absolute image paths and the
    cryoensemblePose* columns; with ``truth`` the input poses are kept as
    cryoensembleInputAngle*/Origin* and the angular error (degrees) is added.

    Arguments:
        table: the input particles.
        result: the search of the particles ``result.indices`` of ``table``.
        names: the structures' display names.
        truth: whether the input poses are the ground truth.
    """
    sub = table.subset(result.indices)
    p = sub.particles.copy()
    best = result.best()
    if truth:
        for c in ("AngleRot", "AngleTilt", "AnglePsi", "OriginXAngst", "OriginYAngst"):
            p[f"cryoensembleInput{c}"] = p[f"rln{c}"].to_numpy(np.float64)
        true_e = p[list(_ANGLES)].to_numpy(np.float64)
        p["cryoensembleAngularError"] = angular_errors(best["rotations"], true_e)
    for j, c in enumerate(_ANGLES):
        p[c] = best["euler"][:, j].astype(np.float64)
    p["rlnOriginXAngst"] = best["shifts"][:, 0].astype(np.float64)
    p["rlnOriginYAngst"] = best["shifts"][:, 1].astype(np.float64)
    p["cryoensemblePoseLogLikelihood"] = best["log_likelihood"].astype(np.float64)
    p["cryoensemblePoseMarginalLogLikelihood"] = best["marginal_log_likelihood"].astype(np.float64)
    p["cryoensemblePoseStructureIndex"] = best["structure"].astype(np.int64)
    if len(names) > 1:
        p["cryoensemblePoseStructure"] = [names[k] for k in best["structure"]]
    star = table.path if table.path is not None else Path.cwd() / "in-memory.star"
    p["rlnImageName"] = _absolute_image_names(p["rlnImageName"], Path(star))
    return sub.optics, p


def error_summary(errors: Float[ArrayLike, " n"]) -> dict[str, float]:
    """Median, mean, 90th percentile and maximum (degrees) of angular errors, and the fraction
    over 10 degrees.

    Arguments:
        errors: (n,) angular errors in degrees.
    """
    err = np.asarray(errors, np.float64)
    return {
        "median_deg": float(np.median(err)),
        "mean_deg": float(np.mean(err)),
        "p90_deg": float(np.percentile(err, 90)),
        "max_deg": float(np.max(err)),
        "fraction_over_10deg": float(np.mean(err > 10)),
    }


def grid_levels(config: PoseSearchConfig) -> list[dict]:
    """Every level searched, with its measured resolution (nearest neighbours on the grid,
    covering radius; degrees) when it has at most 40000 rotations.

    Arguments:
        config: the search settings.
    """
    return [
        {**lv, **grid_resolution(hopf_grid(lv["level"]), n_samples=2000)}
        if lv["n_rotations"] <= _MAX_MEASURED
        else lv
        for lv in config.levels()
    ]


def _truth_errors(particles: pd.DataFrame) -> dict:
    err = particles["cryoensembleAngularError"].to_numpy(np.float64)
    dx = particles["rlnOriginXAngst"] - particles["cryoensembleInputOriginXAngst"]
    dy = particles["rlnOriginYAngst"] - particles["cryoensembleInputOriginYAngst"]
    return {
        "angular_error": error_summary(err),
        "shift_error_median_angstrom": float(np.median(np.hypot(dx, dy))),
    }


def poses_report(
    dataset: ParticleDataset,
    refs: References,
    result: PoseSearchResult,
    config: PoseSearchConfig,
    particles: pd.DataFrame,
    truth: bool,
) -> dict:
    """The report.json record of a search: inputs, grid, structure counts, weights and (with
    ``truth``) the angular and shift errors against the input poses.

    Arguments:
        dataset: the particles searched.
        refs: the structures searched against.
        result: the search.
        config: its settings.
        particles: the output table of :func:`poses_table`.
        truth: whether the input poses are the ground truth.
    """
    best = result.best()
    report = {
        "particles": str(dataset.star_path),
        "n_particles": int(len(result.indices)),
        "box_size": dataset.box_size,
        "pixel_size": dataset.pixel_size,
        "structures": refs.sources,
        "names": refs.names,
        "search": result.info,
        "grid_levels": grid_levels(config),
        "structure_counts": np.bincount(best["structure"], minlength=len(refs.names)).tolist(),
        "median_log_likelihood": float(np.median(best["log_likelihood"])),
        "ground_truth": "input rlnAngle*/rlnOrigin*" if truth else None,
    }
    if len(refs.names) > 1:
        w, _, _ = fit_weights_em(result.marginal_log_likelihood)
        report["weights_pose_marginalised"] = w.tolist()
    if truth:
        report.update(_truth_errors(particles))
    return report


def write_poses_outputs(
    folder: str | os.PathLike,
    tables: tuple[pd.DataFrame, pd.DataFrame],
    result: PoseSearchResult,
    refs: References,
    report: dict,
    plots: bool = True,
) -> None:
    """Write particles.star, the likelihood matrix, report.json and the plots into ``folder``.

    Arguments:
        folder: the output folder (it must exist).
        tables: (optics, particles) of :func:`poses_table`.
        result: the search.
        refs: the structures searched against.
        report: the record of :func:`poses_report`.
        plots: write angular_distribution.png (and angular_error.png with ground truth).
    """
    folder = Path(folder)
    write_particles(folder / "particles.star", tables)
    meta = {"kind": f"pose-marginalised {result.info['kind']}", "names": refs.names}
    save_likelihood_matrix(
        folder, result.marginal_log_likelihood, result.indices, {**meta, "structures": refs.sources}
    )
    if plots:
        plot_angular_distribution(result.best()["euler"], folder / "angular_distribution.png")
        if "angular_error" in report:
            err = tables[1]["cryoensembleAngularError"].to_numpy(np.float64)
            resolution = result.info["final_resolution_deg"]
            plot_angular_error(err, resolution, folder / "angular_error.png")
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def poses_summary_lines(report: dict, out: str | os.PathLike) -> list[str]:
    """What ``cryoensemble poses`` prints: the count written and the angular errors.

    Arguments:
        report: the record of :func:`poses_report`.
        out: the output folder.
    """
    lines = [
        f"poses of {report['n_particles']} particles written to {Path(out) / 'particles.star'}"
    ]
    if "angular_error" in report:
        a = report["angular_error"]
        lines.append(
            f"  angular error: median {a['median_deg']:.2f} deg, 90th percentile "
            f"{a['p90_deg']:.2f} deg (final grid spacing "
            f"{report['search']['final_resolution_deg']:g} deg)"
        )
    return lines
