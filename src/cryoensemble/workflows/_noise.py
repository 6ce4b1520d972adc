"""The noise model the workflows use by default (``likelihood = "auto"``).

Real stacks carry coloured noise (ice, detector) whose level varies between micrographs, so the
default whitens every particle by its micrograph's noise spectrum, estimated from the particle
backgrounds (:func:`cryoensemble.noise.estimate_noise_spectra`), before the marginal likelihood.
Only images known to carry white Gaussian noise skip the whitening: a cryoensemble simulation
(ground-truth ``cryoensemble*`` columns in its STAR file) whose ``summary.json`` records Gaussian
noise (or none) and no structured background. The choice and its reason are recorded in the
outputs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from cryoensemble.imaging import AbstractParticles
from cryoensemble.noise import NoiseSpectra, estimate_noise_spectra
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter

__all__ = [
    "LikelihoodChoice",
    "choose_likelihood",
    "estimate_spectra",
    "known_white_noise",
    "noise_labels",
    "spectra_record",
]

#: The file a cryoensemble simulation writes next to its STAR file (``workflows.simulate``).
_SUMMARY = "summary.json"
#: Words of simulation settings that make the noise non-white when they are set.
_STRUCTURED = frozenset({"ice", "background", "colored", "coloured", "structured", "psd"})


@dataclasses.dataclass(frozen=True)
class LikelihoodChoice:
    """The likelihood a workflow uses and why.

    Arguments:
        kind: the likelihood kind (:data:`cryoensemble.inference.KINDS`).
        requested: what the configuration asked for ("auto" or a kind).
        reason: one line for the outputs.
    """

    kind: str
    requested: str
    reason: str

    def record(self) -> dict[str, str]:
        """The fields recorded in the outputs (e.g. weights.json)."""
        return {
            "likelihood": self.kind,
            "likelihood_requested": self.requested,
            "likelihood_reason": self.reason,
        }


def _summary_of(particles: AbstractParticles) -> Path | None:
    """The simulation summary of a cryoensemble-simulated STAR file, or None."""
    star = getattr(particles, "star_path", None)
    table = getattr(particles, "table", None)
    if star is None or table is None or not Path(star).is_file():
        return None
    if not any(str(c).startswith("cryoensemble") for c in table.extra_columns()):
        return None
    summary = Path(star).parent / _SUMMARY
    return summary if summary.is_file() else None


def _structured_settings(config: dict[str, Any]) -> list[str]:
    """Settings (name words in :data:`_STRUCTURED`) that are set, i.e. non-white noise."""
    return [
        k
        for k, v in config.items()
        if v not in (None, False, 0, 0.0, "", "none") and _STRUCTURED & set(k.lower().split("_"))
    ]


def known_white_noise(particles: AbstractParticles) -> str | None:
    """Why the images of ``particles`` are known to carry white Gaussian noise, or None.

    Arguments:
        particles: the particle set (a :class:`~cryoensemble.io.ParticleDataset` of a
            cryoensemble simulation is the only case recognised).
    """
    summary = _summary_of(particles)
    if summary is None:
        return None
    try:
        record = json.loads(summary.read_text())
    except (OSError, ValueError):
        return None
    noise = record.get("noise")
    config = record.get("config") or {}
    if noise not in ("gaussian", "none") or _structured_settings(config):
        return None
    return f"{summary} records a cryoensemble simulation with {noise} white noise"


def choose_likelihood(
    requested: str, particles: AbstractParticles, coloured_available: bool = True
) -> LikelihoodChoice:
    """Resolve ``"auto"``: "marginal" for images known to be white (or when the workflow cannot
    whiten), else "colored" with the estimated spectra; any other kind is kept.

    Arguments:
        requested: "auto" or a likelihood kind.
        particles: the particle set.
        coloured_available: whether the workflow supports the coloured likelihood here.
    """
    if requested != "auto":
        return LikelihoodChoice(requested, requested, "requested")
    white = known_white_noise(particles)
    if white is not None:
        return LikelihoodChoice("marginal", requested, f"auto: {white}")
    if not coloured_available:
        return LikelihoodChoice(
            "marginal", requested, "auto: whitening is not available here; white marginal"
        )
    return LikelihoodChoice(
        "colored",
        requested,
        "auto: images not known to be white; whitened by the per-micrograph noise spectra "
        "estimated from the particle backgrounds",
    )


def noise_labels(particles: AbstractParticles) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(optics groups, micrograph names) of each particle from its STAR table, None if absent.

    Arguments:
        particles: the particle set (labels only for a set with a ``table``).
    """
    table = getattr(particles, "table", None)
    if table is None:
        return None, None
    p = table.particles
    groups = p["rlnOpticsGroup"].to_numpy() if "rlnOpticsGroup" in p else None
    mics = p["rlnMicrographName"].astype(str).to_numpy() if "rlnMicrographName" in p else None
    return groups, mics


def estimate_spectra(
    particles: AbstractParticles,
    mask_radius_px: float | None,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> NoiseSpectra:
    """Per-micrograph noise spectra of ``particles`` (optics groups and micrographs from the
    STAR table when present; see :func:`cryoensemble.noise.estimate_noise_spectra`).

    Arguments:
        particles: the particle set.
        mask_radius_px: the particle disc radius in pixels (None: 0.8 of half the box).
        progress: reports the particles read.
    """
    groups, mics = noise_labels(particles)
    return estimate_noise_spectra(
        particles, mask_radius_px, groups=groups, micrographs=mics, progress=progress
    )


def spectra_record(spectra: NoiseSpectra) -> dict[str, Any]:
    """A short description of estimated spectra for the outputs.

    Arguments:
        spectra: the estimate.
    """
    scale = np.asarray(spectra.scale)
    return {
        "noise_spectra": int(spectra.profiles.shape[0]),
        "noise_groups": int(spectra.group_profiles.shape[0]),
        "noise_shrinkage_particles": float(spectra.shrinkage),
        "noise_scale_percentiles_5_50_95": np.percentile(scale, [5, 50, 95]).round(4).tolist(),
    }
