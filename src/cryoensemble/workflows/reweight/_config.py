"""Configuration of ``cryoensemble reweight``: a validated pydantic model (files, flags or
library callers alike get every check, with field-level messages)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryoensemble.errors import InputError

__all__ = ["ReweightConfig", "check_likelihood_options", "check_local_poses"]

#: The likelihoods of the likelihood matrix (see ``docs/likelihood.md``).
Likelihood = Literal["auto", "marginal", "white", "colored", "colored_white"]


def check_likelihood_options(
    likelihood: str,
    noise_sigma: float | None,
    unknown_poses: bool,
    mask_radius: float | None,
    mask_3d: str | os.PathLike | None,
) -> None:
    """Raise :class:`~cryoensemble.errors.InputError` for an impossible likelihood setting.

    Arguments:
        likelihood: "auto", "marginal", "white", "colored" or "colored_white".
        noise_sigma: noise standard deviation (image units), needed by "white".
        unknown_poses: the pose-marginalised likelihood (marginal or white, no masks).
        mask_radius: circular mask radius (Angstrom) or None.
        mask_3d: 3-D mask file or None.
    """
    if likelihood == "white" and noise_sigma is None:
        raise InputError("the white-noise likelihood needs the noise sigma (--noise-sigma)")
    if unknown_poses and (
        likelihood not in ("auto", "marginal", "white") or mask_radius or mask_3d
    ):
        raise InputError("--unknown-poses supports --likelihood marginal or white, without masks")


def check_local_poses(
    local_poses: str, likelihood: str, mask_radius: float | None, mask_3d: object
) -> None:
    """Raise :class:`~cryoensemble.errors.InputError` when the local pose marginalisation is
    forced on with a likelihood it does not support.

    Arguments:
        local_poses: "auto", "on" or "off".
        likelihood: the likelihood kind.
        mask_radius: circular mask radius (Angstrom) or None.
        mask_3d: 3-D mask file or None.
    """
    if local_poses not in ("auto", "on", "off"):
        raise InputError(f"local poses must be auto, on or off, got {local_poses!r}")
    if local_poses == "on" and (mask_radius or mask_3d):
        raise InputError("--local-poses on does not support masks (--mask-radius, --mask-3d)")


def _exists(path: Path | None, what: str) -> Path | None:
    if path is not None and not Path(path).exists():
        raise ValueError(f"{path}: {what} not found")
    return path


class ReweightConfig(BaseModel):
    """Everything ``cryoensemble reweight`` needs: the inputs, the likelihood and the fit.

    Lengths in Angstrom; ``noise_sigma`` in image units. Each field's ``description`` says what
    it is; the checks run when the configuration is made (pydantic ``ValidationError``; see
    :func:`cryoensemble.io._config.validate_config` for one-line messages).

    Arguments:
        structures, topology, align_to, selection, center, allow_different_atoms: the ensemble
            (see :func:`~cryoensemble.workflows.reweight.prepare_atoms`).
        particles, invert_contrast, pixel_size: the particles.
        likelihood, noise_sigma, mask_radius, mask_3d, exact, pad_factor, apply_ctf, batch_size, chunk_size, unknown_poses, max_shift, local_poses: the likelihood matrix.
        prior_counts, credible_level, n_samples, burn_in, heldout_fraction, seed: the fit.
        plots: write the PNG plots.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    structures: list[Path] = Field(
        min_length=1,
        description="Structure files (PDB/mmCIF; a multi-model file gives all its models; a "
        "trajectory needs topology).",
    )
    particles: Path = Field(description="Particle STAR file.")
    likelihood: Likelihood = Field(
        "auto",
        description="auto (colored unless the images are known to be white, e.g. a "
        "cryoensemble simulation with white Gaussian noise; marginal with unknown poses) | "
        "white (known noise_sigma) | marginal (scale/offset fitted, variance marginalised, no "
        "whitening) | colored (whitened by the per-micrograph noise spectra estimated from the "
        "particle backgrounds, then marginal) | colored_white (whitened, unit variance).",
    )
    noise_sigma: float | None = Field(None, gt=0, description="Noise sd (image units), white.")
    mask_radius: float | None = Field(None, gt=0, description="Circular mask radius (A).")
    mask_3d: Path | None = Field(None, description="3-D mask (MRC), projected at each pose.")
    selection: str = Field(
        "all", description="Atoms imaged: all, heavy, calpha, backbone, chain:A,B."
    )
    allow_different_atoms: bool = Field(False, description="Allow different atom counts.")
    batch_size: int = Field(128, ge=1, description="Particles read and processed at once.")
    chunk_size: int | None = Field(None, ge=1, description="Images formed at once in a batch.")
    unknown_poses: bool = Field(False, description="Marginalise over a pose search.")
    max_shift: float | None = Field(None, ge=0, description="Unknown poses: shift radius (A).")
    local_poses: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Marginalise over rotations and shifts near each STAR pose, the pose-error "
        "widths estimated from the data (docs/pose_search.md). auto: on for a STAR file, except "
        "a cryoensemble simulation with exact poses (no cryoensembleTrue* columns) or masks "
        "(the coloured likelihoods are whitened inside it); off for in-memory particles.",
    )
    invert_contrast: bool = Field(False, description="Multiply the images by -1.")
    pixel_size: float | None = Field(
        None,
        gt=0,
        description="Read the particles at this pixel size (A, at least the stack's): images "
        "Fourier-cropped on the fly (docs/io.md). None: the stack's.",
    )
    center: bool = Field(True, description="Subtract the centre of mass.")
    align_to: Path | None = Field(None, description="Superpose every structure onto this one.")
    topology: Path | None = Field(None, description="Topology (PDB/mmCIF) for trajectories.")
    prior_counts: list[float] | None = Field(None, description="Dirichlet prior counts.")
    credible_level: float = Field(0.9, gt=0, lt=1, description="Credible interval level.")
    n_samples: int = Field(2000, ge=1, description="Posterior samples (Gibbs).")
    burn_in: int = Field(500, ge=0, description="Gibbs iterations discarded.")
    heldout_fraction: float = Field(0.2, ge=0, lt=1, description="Held-out fraction (0: none).")
    seed: int = Field(0, description="Random seed (posterior sampling, split).")
    pad_factor: float = Field(2.0, ge=1, description="Zero-padding factor for the CTF.")
    apply_ctf: bool = Field(True, description="Multiply the model images by the CTF.")
    exact: bool = Field(True, description="Full marginal formula (False: -N log||r||).")
    plots: bool = Field(True, description="Write the PNG plots.")

    @field_validator("prior_counts", mode="before")
    @classmethod
    def _parse_counts(cls, v: object) -> object:
        """Counts also as text, separated by commas or spaces ("1,2,0.5")."""
        if isinstance(v, str):
            try:
                return [float(x) for x in v.replace(",", " ").split()]
            except ValueError:
                raise ValueError("expected numbers separated by commas") from None
        return v

    @field_validator("prior_counts")
    @classmethod
    def _non_negative(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not c >= 0 for c in v)):
            raise ValueError("expected one or more counts >= 0")
        return v

    @model_validator(mode="after")
    def _inputs(self) -> ReweightConfig:
        _exists(self.particles, "particle STAR file")
        for p in self.structures:
            _exists(p, "structure file")
        _exists(self.mask_3d, "3-D mask")
        _exists(self.align_to, "reference structure")
        _exists(self.topology, "topology")
        check_likelihood_options(
            self.likelihood, self.noise_sigma, self.unknown_poses, self.mask_radius, self.mask_3d
        )
        check_local_poses(self.local_poses, self.likelihood, self.mask_radius, self.mask_3d)
        return self

    def reweight_options(self) -> dict:
        """Keyword arguments of :func:`~cryoensemble.workflows.reweight.reweight` (but the
        particles, models and reference)."""
        return {
            "likelihood": self.likelihood,
            "noise_sigma": self.noise_sigma,
            "mask_radius": self.mask_radius,
            "mask3d": self.mask_3d,
            "selection": self.selection,
            "center": self.center,
            "require_same_atoms": not self.allow_different_atoms,
            "invert_contrast": self.invert_contrast,
            "pixel_size": self.pixel_size,
            "apply_ctf": self.apply_ctf,
            "pad_factor": self.pad_factor,
            "batch_size": self.batch_size,
            "chunk_size": self.chunk_size,
            "unknown_poses": self.unknown_poses,
            "max_shift": self.max_shift,
            "local_poses": self.local_poses,
            "exact": self.exact,
            "prior_counts": self.prior_counts,
            "credible_level": self.credible_level,
            "n_samples": self.n_samples,
            "burn_in": self.burn_in,
            "seed": self.seed,
            "heldout_fraction": self.heldout_fraction or None,
        }
