"""Particles as the kernels see them: a batch pytree, and sources of batches.

:class:`AbstractParticles` is what every likelihood, pose search and optimisation consumes; the
STAR-file dataset (:class:`cryoensemble.io.ParticleDataset`) and :class:`ArrayParticles` (images
held in memory) implement it.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from cryoensemble.errors import InputError, check_positive
from cryoensemble.optics import CTFParams

__all__ = ["AbstractParticles", "ArrayParticles", "ParticleBatch", "crop_geometry"]

# Relative tolerance on a requested pixel size: STAR files carry pixel sizes such as
# 1.0600000143 (float32 round trips), which must still match 1.06.
_PIXEL_SIZE_RTOL = 1e-4


class ParticleBatch(eqx.Module):
    """A batch of particles, ready for jitted code (a pytree of float32/int32 arrays).

    Arguments:
        images: (b, N, N) particle images.
        rotations: (b, 3, 3) RELION rotation matrices.
        shifts: (b, 2) [rlnOriginXAngst, rlnOriginYAngst] in Angstrom.
        ctf: a :class:`~cryoensemble.optics.CTFParams` with (b,) fields.
        indices: (b,) 0-based particle indices in the STAR file.
        valid: (b,) 1.0 for real particles and 0.0 for padding (see ``pad_to``).
    """

    images: Float[Array, "b n n"]
    rotations: Float[Array, "b 3 3"]
    shifts: Float[Array, "b 2"]
    ctf: CTFParams
    indices: Int[Array, " b"]
    valid: Float[Array, " b"]

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def n_valid(self) -> int:
        """Number of real (not padding) particles."""
        return int(np.asarray(self.valid).sum())


def crop_geometry(
    native_box: int,
    native_pixel_size: float,
    pixel_size: float | None = None,
    box_size: int | None = None,
    source: str = "particles",
) -> tuple[int, float]:
    """(box in pixels, pixel size in Angstrom) of images of ``native_box`` pixels of
    ``native_pixel_size`` Angstrom after Fourier cropping to ``pixel_size`` and/or ``box_size``.

    Fourier cropping keeps the field of view: box x pixel size is unchanged, so the new pixel
    size is ``native_pixel_size * native_box / box``. Only downsampling is possible (a pixel size
    at least the native one, an even box at most the native one); a pixel size must be reached
    exactly (relative 1e-4) by an even box, otherwise the message lists the nearest boxes.

    Arguments:
        native_box: box of the stored images (pixels).
        native_pixel_size: pixel size of the stored images (Angstrom).
        pixel_size: wanted pixel size (Angstrom); None: from ``box_size``, or the native one.
        box_size: wanted box (pixels, even); None: from ``pixel_size``, or the native one.
        source: the particle file, named in the messages.
    """
    if pixel_size is None and box_size is None:
        return int(native_box), float(native_pixel_size)
    fov = native_box * native_pixel_size  # field of view (A), kept by the crop
    box = _target_box(native_box, native_pixel_size, pixel_size, box_size, source)
    if pixel_size is not None:
        reached = fov / box
        if abs(reached - pixel_size) > _PIXEL_SIZE_RTOL * pixel_size:
            raise InputError(
                f"{source}: pixel_size = {pixel_size:g} A and box_size = {box} pixels disagree: "
                f"{native_box} pixels of {native_pixel_size:g} A cropped to {box} pixels are "
                f"{reached:g} A"
            )
    return box, fov / box


def _target_box(
    native_box: int,
    native_pixel_size: float,
    pixel_size: float | None,
    box_size: int | None,
    source: str,
) -> int:
    """The even box (pixels) of the crop; refuses upsampling and unreachable pixel sizes."""
    if box_size is not None:
        if box_size == native_box and not isinstance(box_size, bool):
            return int(native_box)
        if isinstance(box_size, bool) or int(box_size) != box_size or box_size < 2 or box_size % 2:
            raise InputError(
                f"{source}: box_size must be an even number of pixels, got {box_size!r}"
            )
        if box_size > native_box:
            raise InputError(
                f"{source}: box_size = {box_size} is larger than the stored {native_box}-pixel "
                "images; only downsampling (Fourier cropping) is supported"
            )
        return int(box_size)
    try:
        px = check_positive("pixel_size (Angstrom)", pixel_size)
    except InputError as err:
        raise InputError(f"{source}: {err}") from None
    if px < native_pixel_size * (1 - _PIXEL_SIZE_RTOL):
        raise InputError(
            f"{source}: pixel_size = {px:g} A is smaller than the stored images' "
            f"{native_pixel_size:g} A; only downsampling (Fourier cropping) is supported"
        )
    exact = native_box * native_pixel_size / px
    if abs(exact - native_box) <= _PIXEL_SIZE_RTOL * exact:
        return int(native_box)  # the native pixel size: nothing to crop (odd boxes too)
    box = 2 * round(exact / 2)
    if box < 2 or abs(exact - box) > _PIXEL_SIZE_RTOL * exact:
        low, high = max(2, 2 * math.floor(exact / 2)), 2 * math.ceil(exact / 2)
        options = ", ".join(
            f"box_size = {b} gives {native_box * native_pixel_size / b:g} A"
            for b in sorted({low, min(high, native_box)})
        )
        raise InputError(
            f"{source}: pixel_size = {px:g} A is not reachable by Fourier cropping "
            f"{native_box} pixels of {native_pixel_size:g} A to an even box ({options})"
        )
    return box


class AbstractParticles(abc.ABC):
    """A set of particles read in batches: ``box_size`` (pixels), ``pixel_size`` (Angstrom),
    ``len()``, and :meth:`batch`."""

    box_size: int
    pixel_size: float

    def mask_radius_px(self, radius: float, field: str = "mask_radius") -> float:
        """A circular mask radius in Angstrom as pixels of these images, checked to fit.

        The radius must be at least 2 pixels and at most half the box (the disc inscribed in
        the image); a larger disc means the particle images are too small for the mask.

        Arguments:
            radius: mask radius in Angstrom.
            field: the option that gave ``radius``, named in the messages.
        """
        source = getattr(self, "star_path", type(self).__name__)
        r = check_positive(f"{field} (Angstrom)", radius)
        radius_px = r / self.pixel_size
        if radius_px < 2:
            raise InputError(
                f"{source}: {field} = {r:g} A is under 2 pixels ({self.pixel_size:g} A)"
            )
        half = self.box_size / 2
        if radius_px > half:
            raise InputError(
                f"{source}: {field} = {r:g} A ({radius_px:.1f} pixels) is larger than half the "
                f"box ({self.box_size} pixels of {self.pixel_size:g} A: at most "
                f"{half * self.pixel_size:g} A); the particle images are too small for the mask"
            )
        return radius_px

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def batch(self, indices: ArrayLike | Sequence[int], pad_to: int | None = None) -> ParticleBatch:
        """The particles ``indices`` as a :class:`ParticleBatch`.

        Arguments:
            indices: 0-based particle indices.
            pad_to: pad the batch to this size with copies of the last particle marked
                ``valid = 0`` (None: no padding).
        """

    def iter_batches(
        self,
        batch_size: int,
        indices: ArrayLike | Sequence[int] | None = None,
        pad_to: int | None = None,
    ) -> Iterator[ParticleBatch]:
        """Yield :class:`ParticleBatch` objects of at most ``batch_size`` particles, in order.

        Only one batch is read at a time.

        Arguments:
            batch_size: particles per batch (>= 1).
            indices: 0-based particles to read, in that order (default: all).
            pad_to: pad every batch to this size (usually ``batch_size``); without it the last
                batch may be smaller.
        """
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
        if pad_to is not None and pad_to < batch_size:
            raise InputError(f"pad_to = {pad_to} is smaller than batch_size = {batch_size}")
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64).reshape(-1)
        for start in range(0, len(idx), batch_size):
            yield self.batch(idx[start : start + batch_size], pad_to=pad_to)


class ArrayParticles(AbstractParticles):
    """Particles held in memory, with the ``batch`` interface of
    :class:`~cryoensemble.io.ParticleDataset`.

    Arguments:
        images: (n, N, N) particle images.
        ctf: a :class:`~cryoensemble.optics.CTFParams` with (n,) or scalar fields.
        pixel_size: Angstrom.
        rotations: (n, 3, 3) RELION matrices; None when the poses are unknown (identity).
        shifts: (n, 2) RELION origins in Angstrom; None when unknown (zero).
    """

    def __init__(
        self,
        images: ArrayLike,
        ctf: CTFParams,
        pixel_size: float,
        rotations: ArrayLike | None = None,
        shifts: ArrayLike | None = None,
    ):
        self.images = np.asarray(images, np.float32)
        if self.images.ndim != 3 or self.images.shape[1] != self.images.shape[2]:
            raise InputError(f"images must be (n, N, N), got shape {self.images.shape}")
        n = len(self.images)
        eye = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3))
        self.rotations = np.asarray(eye if rotations is None else rotations, np.float32)
        self.shifts = np.asarray(np.zeros((n, 2)) if shifts is None else shifts, np.float32)
        self.ctf = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x, np.float32), (n,)), ctf)
        self.box_size = int(self.images.shape[-1])
        self.pixel_size = check_positive("pixel size (Angstrom)", pixel_size)
        self.star_path = "in-memory particles"

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: ArrayLike | Sequence[int], pad_to: int | None = None) -> ParticleBatch:
        idx = np.asarray(indices, np.int64).reshape(-1)
        valid = np.ones(len(idx), np.float32)
        if pad_to is not None and pad_to > len(idx):
            extra = int(pad_to) - len(idx)
            idx = np.concatenate([idx, np.full(extra, idx[-1])])
            valid = np.concatenate([valid, np.zeros(extra, np.float32)])
        take = lambda a: jnp.asarray(a[idx])
        return ParticleBatch(
            images=take(self.images),
            rotations=take(self.rotations),
            shifts=take(self.shifts),
            ctf=jax.tree.map(take, self.ctf),
            indices=jnp.asarray(idx, jnp.int32),
            valid=jnp.asarray(valid),
        )
