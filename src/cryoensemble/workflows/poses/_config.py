"""Configuration of ``cryoensemble poses``: a validated pydantic model over the inputs, the
outputs and the pose-search kernel settings (:class:`~cryoensemble.posesearch.PoseSearchConfig`,
built by :meth:`PosesConfig.search_config` and checked when the configuration is made)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryoensemble.posesearch import PoseSearchConfig

__all__ = ["PosesConfig"]


class PosesConfig(BaseModel):
    """Everything ``cryoensemble poses`` needs. Lengths in Angstrom, angles in degrees.

    Arguments:
        particles, structures: the inputs.
        base_level, n_refine, n_candidates, max_shift, shift_sigma, likelihood, noise_sigma, pad_factor, interpolation, coarse_box, band_limit, apply_ctf, subpixel, batch_size, rotation_chunk: the search (see :class:`~cryoensemble.posesearch.PoseSearchConfig`).
        invert_contrast, pixel_size, selection, center: how the images and models are read.
        truth, plots: the outputs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    particles: Path = Field(description="Particle STAR file.")
    structures: list[Path] = Field(
        min_length=1,
        description="Structures (PDB/mmCIF; a multi-model file gives all its models) or maps "
        "(MRC, the particles' box and pixel size).",
    )
    base_level: int = Field(2, description="Global Hopf grid level: 0 (72 rotations, 60 deg), 1 "
                            "(576, 30), 2 (4608, 15), 3 (36864, 7.5).")  # fmt: skip
    n_refine: int = Field(2, description="Local refinement levels, each halving the spacing.")
    n_candidates: int = Field(8, description="Cells refined per particle and level.")
    max_shift: float | None = Field(None, description="Shift search radius (default 10 % box).")
    shift_sigma: float | None = Field(None, description="Gaussian shift prior sd (A).")
    likelihood: Literal["marginal", "white"] = Field(
        "marginal", description="marginal (scale/offset fitted) | white (needs noise_sigma)."
    )
    noise_sigma: float | None = Field(None, description="Noise sd (image units), for white.")
    pad_factor: float = Field(2.0, description="Template zero-padding for the CTF (1: faster).")
    interpolation: Literal["linear", "cubic"] = Field("linear", description="Slice interpolation.")
    coarse_box: int | None = Field(
        32, description="Frequency marching: the base level's box (pixels); 0 or None: off."
    )
    band_limit: float | None = Field(None, description="Resolution (A) of the final level.")
    apply_ctf: bool = Field(True, description="Apply the CTF to the templates.")
    subpixel: bool = Field(True, description="Quarter-pixel shifts on the refinement levels.")
    invert_contrast: bool = Field(False, description="Multiply the images by -1.")
    pixel_size: float | None = Field(
        None,
        gt=0,
        description="Read the particles at this pixel size (A, at least the stack's): images "
        "Fourier-cropped on the fly (docs/io.md). None: the stack's.",
    )
    selection: str = Field(
        "all", description="Atoms imaged: all, heavy, calpha, backbone, chain:A,B."
    )
    center: bool = Field(True, description="Subtract each model's centre of mass.")
    truth: Literal["auto", "input", "none"] = Field(
        "auto",
        description="Ground truth for the angular errors: auto (the input's angles when present "
        "and not all zero) | input | none.",
    )
    batch_size: int | None = Field(None, description="Particles searched at once.")
    rotation_chunk: int | None = Field(None, description="Rotations per chunk (memory).")
    plots: bool = Field(True, description="Write the PNG plots.")

    @field_validator("coarse_box")
    @classmethod
    def _zero_is_off(cls, v: int | None) -> int | None:
        return v or None

    @model_validator(mode="after")
    def _check(self) -> PosesConfig:
        if not self.particles.exists():
            raise ValueError(f"{self.particles}: particle STAR file not found")
        for p in self.structures:
            if not p.exists():
                raise ValueError(f"{p}: structure file not found")
        self.search_config()  # the kernel settings' own checks (InputError is a ValueError)
        return self

    def search_config(self) -> PoseSearchConfig:
        """The kernel settings of the search."""
        return PoseSearchConfig(
            base_level=self.base_level,
            n_refine=self.n_refine,
            n_candidates=self.n_candidates,
            max_shift=self.max_shift,
            shift_sigma=self.shift_sigma,
            kind=self.likelihood,
            sigma=self.noise_sigma,
            pad_factor=self.pad_factor,
            coarse_box=self.coarse_box,
            band_limit=self.band_limit,
            interpolation=self.interpolation,
            apply_ctf=self.apply_ctf,
            subpixel=self.subpixel,
            particle_batch=self.batch_size,
            rotation_chunk=self.rotation_chunk,
        )
