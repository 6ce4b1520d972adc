"""The kernel settings of the pose search: a frozen dataclass, hashable and static under ``jit``."""

from __future__ import annotations

import dataclasses
import math

import jax

from cryoensemble.errors import InputError, check_positive
from cryoensemble.pose import n_rotations, nominal_resolution

__all__ = ["KINDS", "PoseSearchConfig"]

#: The likelihoods the search scores with.
KINDS = ("marginal", "white")


def _even_ceil(x: float) -> int:
    k = int(math.ceil(x - 1e-9))
    return k + (k % 2)


def _check_int(name: str, value: float, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or int(value) != value or value < lo:
        raise InputError(f"{name} must be an integer >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise InputError(f"{name} must be <= {hi}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class PoseSearchConfig:
    """Settings of the pose search (hashable; static under ``jit``). Invalid values raise
    :class:`~cryoensemble.errors.InputError`.

    Arguments:
        base_level: level of the global Hopf grid (0: 72 rotations / 60 deg, 1: 576 / 30,
            2: 4608 / 15, 3: 36864 / 7.5).
        n_refine: local refinement levels (each halves the spacing).
        n_candidates: cells refined per particle and level.
        max_shift: radius of the shift search in Angstrom (None: 10 % of the box).
        shift_sigma: standard deviation (Angstrom) of a Gaussian shift prior (None: uniform in
            the disc).
        kind: "marginal" or "white" (needs ``sigma``).
        sigma: white-noise standard deviation (image units).
        exact: the full marginal formula (see ``docs/likelihood.md``).
        pad_factor: the template grid for the CTF (2 as the imaging pipeline; 1 is faster,
            circular CTF).
        interpolation: Fourier-slice interpolation ("linear" or "cubic").
        apply_ctf: multiply the templates by each particle's CTF.
        subpixel: on the refinement levels, split every pixel of the shift search into 4 quarter
            cells (translations t + (+-1/4, +-1/4)).
        particle_batch: particles searched at once (None: 8 on CPU, 64 on GPU).
        rotation_chunk: rotations scored at once on the global level (None: 16 CPU, 64 GPU).
        coarse_box: frequency marching: the base level is searched on the images and templates
            Fourier-cropped to this box (pixels; pad factor 1), each refinement level doubles it
            up to the final box; the last level is always on the final box (None: every level on
            the full box).
        band_limit: resolution (Angstrom) of the final level, searched on the images
            Fourier-cropped to Nyquist = 1 / band_limit (None: the full images).
    """

    base_level: int = 2
    n_refine: int = 2
    n_candidates: int = 8
    max_shift: float | None = None
    shift_sigma: float | None = None
    kind: str = "marginal"
    sigma: float | None = None
    exact: bool = True
    pad_factor: float = 2.0
    interpolation: str = "linear"
    apply_ctf: bool = True
    subpixel: bool = True
    particle_batch: int | None = None
    rotation_chunk: int | None = None
    coarse_box: int | None = 32
    band_limit: float | None = None

    def __post_init__(self) -> None:
        self._check_grid()
        self._check_likelihood()
        self._check_sampling()

    def _check_grid(self) -> None:
        _check_int("base level", self.base_level, 0, 5)
        _check_int("refinement levels", self.n_refine, 0, 6)
        _check_int("candidates per level", self.n_candidates, 1)
        if self.base_level + self.n_refine > 8:
            raise InputError(
                f"base level + refinement levels = {self.base_level + self.n_refine} > 8 "
                "(0.23 degrees); choose fewer levels"
            )
        if self.max_shift is not None and not (
            math.isfinite(self.max_shift) and self.max_shift >= 0
        ):
            raise InputError(f"max shift must be >= 0 Angstrom, got {self.max_shift!r}")
        if self.shift_sigma is not None:
            check_positive("shift prior sigma (Angstrom)", self.shift_sigma)

    def _check_likelihood(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"pose-search likelihood must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "white":
            if self.sigma is None:
                raise InputError("the white-noise likelihood needs the noise sigma")
            check_positive("noise sigma", self.sigma)

    def _check_sampling(self) -> None:
        if not self.pad_factor >= 1:
            raise InputError(f"pad factor must be >= 1, got {self.pad_factor}")
        if self.interpolation not in ("linear", "cubic"):
            raise InputError(
                f"interpolation must be 'linear' or 'cubic', got {self.interpolation!r}"
            )
        if self.coarse_box is not None:
            _check_int("coarse box", self.coarse_box, 8)
        if self.band_limit is not None:
            check_positive("band limit (Angstrom)", self.band_limit)
        for name in ("particle_batch", "rotation_chunk"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name.replace("_", " "), value, 1)

    @property
    def final_level(self) -> int:
        """The level of the finest grid searched."""
        return self.base_level + self.n_refine

    @property
    def final_resolution(self) -> float:
        """Nominal spacing (degrees) of the finest level."""
        return nominal_resolution(self.final_level)

    def levels(self) -> list[dict]:
        """Level, rotations in the full grid and nominal spacing (degrees) of every level."""
        return [
            {"level": lv, "n_rotations": n_rotations(lv), "resolution_deg": nominal_resolution(lv)}
            for lv in range(self.base_level, self.final_level + 1)
        ]

    def level_boxes(self, box_size: int, pixel_size: float) -> list[int]:
        """The (Fourier-cropped) image box (pixels) of every level searched, coarse to fine.

        Arguments:
            box_size: the particles' box (pixels).
            pixel_size: the particles' pixel size (Angstrom).
        """
        n = int(box_size)
        final = n
        if self.band_limit is not None:
            final = min(n, _even_ceil(2.0 * n * pixel_size / self.band_limit))
        out = []
        for i in range(self.n_refine):
            b = final if self.coarse_box is None else min(final, self.coarse_box * 2**i)
            out.append(b - b % 2 if b < final else final)
        return out + [final]  # the last level: the final sampling

    def batch_sizes(self) -> tuple[int, int]:
        """(particles, rotations) per step: the settings, or defaults for the JAX backend."""
        cpu = jax.default_backend() == "cpu"
        pb = self.particle_batch or (8 if cpu else 64)
        rc = self.rotation_chunk or (16 if cpu else 64)
        return int(pb), int(rc)
