"""Particles as the kernels see them: a batch pytree, and sources of batches.

:class:`AbstractParticles` is what every likelihood, pose search and optimisation consumes; the
STAR-file dataset (:class:`cryoensemble.io.ParticleDataset`) and :class:`ArrayParticles` (images
held in memory) implement it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from cryoensemble.errors import InputError, check_positive
from cryoensemble.optics import CTFParams

__all__ = ["AbstractParticles", "ArrayParticles", "ParticleBatch"]


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


class AbstractParticles(abc.ABC):
    """A set of particles read in batches: ``box_size`` (pixels), ``pixel_size`` (Angstrom),
    ``len()``, and :meth:`batch`."""

    box_size: int
    pixel_size: float

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
