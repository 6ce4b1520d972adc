"""Uniform grids on SO(3): the Hopf-fibration grid of Yershova et al. (2010) with HEALPix directions.

Construction. SO(3) is a circle bundle over the sphere (the Hopf fibration): a rotation ``A`` is
its viewing direction ``d = A^T e_z`` (the third row of RELION's matrix, i.e. (tilt, rot) as
polar/azimuthal angles) plus an in-plane angle psi on the fibre. The grid of level ``l`` is

* directions: the 12 Nside^2 centres of the HEALPix pixels (Gorski et al. 2005), Nside = 2^l, in
  the NESTED numbering (the four children of pixel p at 2 Nside are 4p, ..., 4p + 3);
* in-plane: 6 Nside equally spaced psi values at the midpoints of [0, 360) degree intervals,
  psi_q = (q + 1/2) 360 / (6 Nside);
* the rotation of cell (p, q) is RELION's ``A(rot = phi_p, tilt = theta_p, psi = psi_q)``.

It has 72 * 8^l rotations (72, 576, 4608, 36864, ... for l = 0, 1, 2, 3): every cell (HEALPix
pixel x psi interval) has the same Haar measure (HEALPix pixels have equal areas and the Haar
measure in ZYZ Euler angles is sin(tilt) d rot d tilt d psi / 8 pi^2), so the quadrature weights
are uniform, 1 / (72 * 8^l). Cells are nested: the 8 children of (p, q) at level l + 1 are
(4p + i, 2q + j), i < 4, j < 2, and they partition the parent cell exactly, which makes the
coarse-to-fine search an adaptive midpoint rule on a partition of SO(3).

Nominal resolution: the psi spacing 60 / Nside degrees (the HEALPix pixel scale
sqrt(4 pi / N_pix) = 58.6 / Nside degrees is about the same); :func:`grid_resolution` measures
the nearest-neighbour geodesic distances and the covering radius on the actual rotations.
"""

from __future__ import annotations

import dataclasses
import math
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from cryoensemble.errors import InputError
from cryoensemble.pose._euler import euler_to_matrix, matrix_to_quaternion

__all__ = [
    "SO3Grid",
    "cell_children",
    "cell_rotations",
    "geodesic_distance",
    "grid_resolution",
    "healpix_nest_angles",
    "hopf_grid",
    "n_rotations",
    "nominal_resolution",
]

# HEALPix face tables (Gorski et al. 2005, healpix_base): ring and phi offsets of the 12 faces.
_JRLL = (2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4)
_JPLL = (1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7)
_MAX_LEVEL = 12


def _check_level(level: Any) -> int:
    if isinstance(level, bool) or int(level) != level or not 0 <= int(level) <= _MAX_LEVEL:
        raise InputError(f"grid level must be an integer in [0, {_MAX_LEVEL}], got {level!r}")
    return int(level)


def n_rotations(level: int) -> int:
    """Number of rotations of the Hopf grid of ``level``: 12 Nside^2 directions x 6 Nside psi.

    Arguments:
        level: the grid level, an integer in [0, 12] (Nside = 2^level).
    """
    nside = 2 ** _check_level(level)
    return 72 * nside**3


def nominal_resolution(level: int) -> float:
    """The grid spacing in degrees: the psi step 360 / (6 Nside) = 60 / 2^level.

    Arguments:
        level: the grid level, an integer in [0, 12].
    """
    return 60.0 / 2 ** _check_level(level)


def _compress_bits(v, xp, n_bits: int):
    """The even bits of ``v`` packed together (inverse of bit interleaving)."""
    out = xp.zeros_like(v)
    for b in range(n_bits):
        out = out | (((v >> (2 * b)) & 1) << b)
    return out


def healpix_nest_angles(
    nside: int, pix: Int[ArrayLike, "*b"], xp: ModuleType = jnp
) -> tuple[Float[Array | np.ndarray, "*b"], Float[Array | np.ndarray, "*b"]]:
    """(theta, phi) in radians of the centres of HEALPix NESTED pixels ``pix`` at ``nside``.

    theta is the polar angle (colatitude) in [0, pi], phi the azimuth in [0, 2 pi). Follows
    healpix_base ``pix2ang`` (nest2xyf, then the ring number and the position in the ring).

    Arguments:
        nside: the HEALPix resolution parameter (a power of 2).
        pix: pixel indices in [0, 12 nside^2), NESTED numbering.
        xp: the array module, ``jax.numpy`` (default; traceable) or ``numpy``.
    """
    nside = int(nside)
    p = xp.asarray(pix).astype(xp.int32)
    npface = nside * nside
    face = p // npface
    ipf = p % npface
    n_bits = max(1, int(math.log2(nside)) + 1)
    ix = _compress_bits(ipf, xp, n_bits)
    iy = _compress_bits(ipf >> 1, xp, n_bits)
    jrll = xp.asarray(np.array(_JRLL, np.int32))[face]
    jpll = xp.asarray(np.array(_JPLL, np.int32))[face]
    jr = jrll * nside - ix - iy - 1
    north = jr < nside
    south = jr > 3 * nside
    nr = xp.where(north, jr, xp.where(south, 4 * nside - jr, nside))
    fact2 = 1.0 / (3.0 * nside * nside)
    z = xp.where(
        north,
        1.0 - nr * nr * fact2,
        xp.where(south, nr * nr * fact2 - 1.0, (2 * nside - jr) * 2.0 / (3.0 * nside)),
    )
    kshift = xp.where(north | south, 0, (jr - nside) & 1)
    jp = (jpll * nr + ix - iy + 1 + kshift) // 2  # always even numerator: exact
    jp = xp.where(jp > 4 * nside, jp - 4 * nside, jp)
    jp = xp.where(jp < 1, jp + 4 * nside, jp)
    phi = (jp - (kshift + 1) * 0.5) * (0.5 * np.pi / nr)
    theta = xp.arccos(xp.clip(z, -1.0, 1.0))
    return theta, phi


def cell_euler(
    level: int, pix: Int[ArrayLike, "*b"], psi_index: Int[ArrayLike, "*b"], xp: ModuleType = jnp
) -> tuple[
    Float[Array | np.ndarray, "*b"],
    Float[Array | np.ndarray, "*b"],
    Float[Array | np.ndarray, "*b"],
]:
    """RELION Euler angles (rot, tilt, psi) in degrees of grid cells (pixel, psi index).

    Arguments:
        level: the grid level.
        pix: HEALPix NESTED pixel indices at Nside = 2^level.
        psi_index: in-plane indices in [0, 6 Nside).
        xp: the array module, ``jax.numpy`` (default) or ``numpy``.
    """
    nside = 2 ** int(level)
    theta, phi = healpix_nest_angles(nside, pix, xp)
    psi = (xp.asarray(psi_index) + 0.5) * (360.0 / (6 * nside))
    return xp.rad2deg(phi), xp.rad2deg(theta), psi


def cell_rotations(
    level: int, pix: Int[ArrayLike, "*b"], psi_index: Int[ArrayLike, "*b"]
) -> Float[Array, "*b 3 3"]:
    """RELION rotation matrices (float32) of the cells (pixel, psi index) of ``level`` (JAX).

    Arguments:
        level: the grid level.
        pix: HEALPix NESTED pixel indices at Nside = 2^level.
        psi_index: in-plane indices in [0, 6 Nside).
    """
    rot, tilt, psi = cell_euler(level, pix, psi_index, jnp)
    return euler_to_matrix(rot, tilt, psi).astype(jnp.float32)


def cell_children(
    pix: Int[ArrayLike, "*b"], psi_index: Int[ArrayLike, "*b"], xp: ModuleType = jnp
) -> tuple[Int[Array | np.ndarray, "*b 8"], Int[Array | np.ndarray, "*b 8"]]:
    """The 8 children (pixel, psi index) at the next level, as arrays (..., 8).

    Arguments:
        pix: HEALPix NESTED pixel indices of the parent cells.
        psi_index: their in-plane indices.
        xp: the array module, ``jax.numpy`` (default) or ``numpy``.
    """
    p = xp.asarray(pix)
    q = xp.asarray(psi_index)
    i = xp.asarray(np.repeat(np.arange(4), 2).astype(np.int32))
    j = xp.asarray(np.tile(np.arange(2), 4).astype(np.int32))
    return 4 * p[..., None] + i, 2 * q[..., None] + j


@dataclasses.dataclass(frozen=True, eq=False)
class SO3Grid:
    """The Hopf grid of one level (see the module docstring).

    ``pixels`` (N,) HEALPix nested indices, ``psi_index`` (N,), ``euler`` (N, 3) (rot, tilt, psi)
    in degrees, ``rotations`` (N, 3, 3) float32 RELION matrices, ``log_weights`` (N,) the log
    quadrature weights (uniform: -log N).
    """

    level: int
    pixels: np.ndarray
    psi_index: np.ndarray
    euler: np.ndarray
    rotations: np.ndarray

    @property
    def nside(self) -> int:
        """The HEALPix Nside = 2^level."""
        return 2**self.level

    @property
    def size(self) -> int:
        """The number of rotations, 72 * 8^level."""
        return len(self.pixels)

    @property
    def log_weights(self) -> np.ndarray:
        """The log quadrature weights (N,): uniform, -log N."""
        return np.full(self.size, -math.log(self.size))

    @property
    def resolution(self) -> float:
        """Nominal spacing in degrees (:func:`nominal_resolution`)."""
        return nominal_resolution(self.level)

    def quaternions(self) -> np.ndarray:
        """Unit quaternions (N, 4) (w, x, y, z), w >= 0, float64."""
        with jax.enable_x64(True):
            e = jnp.asarray(self.euler, jnp.float64)
            m = euler_to_matrix(e[:, 0], e[:, 1], e[:, 2])
            return np.asarray(matrix_to_quaternion(m), np.float64)


def hopf_grid(level: int) -> SO3Grid:
    """The uniform Hopf-fibration grid on SO(3) of ``level`` (72 * 8^level rotations).

    Arguments:
        level: the grid level, an integer in [0, 12]; spacing about 60 / 2^level degrees.
    """
    level = _check_level(level)
    nside = 2**level
    n_pix, n_psi = 12 * nside * nside, 6 * nside
    pixels = np.repeat(np.arange(n_pix, dtype=np.int32), n_psi)
    psi_index = np.tile(np.arange(n_psi, dtype=np.int32), n_pix)
    rot, tilt, psi = cell_euler(level, pixels, psi_index, np)
    euler = np.stack([rot, tilt, psi], axis=-1)
    rotations = np.asarray(euler_to_matrix(rot, tilt, psi), np.float32)
    return SO3Grid(level, pixels, psi_index, euler, rotations)


def geodesic_distance(
    q1: Float[ArrayLike, "*b 4"], q2: Float[ArrayLike, "*b 4"]
) -> Float[np.ndarray, "*b"]:
    """Rotation angle in degrees between unit quaternions (broadcast), 2 arccos |q1 . q2|.

    Arguments:
        q1: unit quaternions (w, x, y, z).
        q2: unit quaternions, broadcast against ``q1``.
    """
    d = np.abs(np.sum(np.asarray(q1) * np.asarray(q2), axis=-1))
    return np.rad2deg(2.0 * np.arccos(np.clip(d, 0.0, 1.0)))


def _nearest(queries: np.ndarray, points: np.ndarray, exclude_self: bool, chunk: int = 256):
    """Geodesic distance (degrees) from every query quaternion to its nearest point."""
    out = np.empty(len(queries))
    for s in range(0, len(queries), chunk):
        d = np.abs(queries[s : s + chunk] @ points.T)
        if exclude_self:
            rows = np.arange(d.shape[0])
            d[rows, s + rows] = -1.0
        out[s : s + chunk] = np.rad2deg(2.0 * np.arccos(np.clip(d.max(axis=1), 0.0, 1.0)))
    return out


def grid_resolution(
    grid: SO3Grid | Float[ArrayLike, "n 4"], n_samples: int = 20000, seed: int = 0
) -> dict[str, float | int]:
    """Measured resolution of a rotation grid (an :class:`SO3Grid` or (N, 4) quaternions).

    Returns ``mean_nn``, ``median_nn``, ``max_nn`` (nearest-neighbour geodesic distances within
    the grid, degrees) and ``covering_radius`` (the largest distance from ``n_samples`` uniform
    random rotations to their nearest grid rotation, a lower bound of the true covering radius)
    and ``mean_error`` (the mean of those distances: the expected error of snapping a random
    rotation to the grid), plus ``n_rotations``.

    Arguments:
        grid: the grid, or its rotations as unit quaternions (w, x, y, z).
        n_samples: the number of uniform random rotations for the covering radius.
        seed: the seed of those random rotations.
    """
    q = grid.quaternions() if isinstance(grid, SO3Grid) else np.asarray(grid, np.float64)
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(int(n_samples), 4))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    nn = _nearest(q, q, exclude_self=True)
    cover = _nearest(r, q, exclude_self=False)
    return {
        "n_rotations": int(len(q)),
        "mean_nn": float(nn.mean()),
        "median_nn": float(np.median(nn)),
        "max_nn": float(nn.max()),
        "covering_radius": float(cover.max()),
        "mean_error": float(cover.mean()),
    }
