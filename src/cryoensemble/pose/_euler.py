"""Rotations in RELION's convention.

RELION (Xmipp) Euler angles (rot, tilt, psi) in degrees, ZYZ. The matrix ``A`` maps a point ``r`` of
the map frame (relative to the box centre) to ``A @ r``, which is then projected along z:

    A = Rz(-psi) @ Ry(-tilt) @ Rz(-rot)    (active rotations)

Rows, with c/s of phi = rot, theta = tilt, psi:
    [ cps*cth*cph - sps*sph,  cps*cth*sph + sps*cph, -cps*sth]
    [-sps*cth*cph - cps*sph, -sps*cth*sph + cps*cph,  sps*sth]
    [ sth*cph,                sth*sph,                cth    ]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

__all__ = [
    "euler_to_matrix",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "random_euler_angles",
    "random_quaternions",
    "random_rotations",
]


def euler_to_matrix(
    rot: Real[ArrayLike, "*b"], tilt: Real[ArrayLike, "*b"], psi: Real[ArrayLike, "*b"]
) -> Float[Array, "*b 3 3"]:
    """RELION rotation matrix (dimensionless) from Euler angles (rot, tilt, psi).

    Arguments:
        rot: first ZYZ angle in degrees (RELION ``rlnAngleRot``).
        tilt: second angle in degrees (``rlnAngleTilt``).
        psi: third angle in degrees (``rlnAnglePsi``).
    """
    ph, th, ps = (jnp.deg2rad(jnp.asarray(a)) for a in (rot, tilt, psi))
    cph, sph = jnp.cos(ph), jnp.sin(ph)
    cth, sth = jnp.cos(th), jnp.sin(th)
    cps, sps = jnp.cos(ps), jnp.sin(ps)
    rows = [
        [cps * cth * cph - sps * sph, cps * cth * sph + sps * cph, -cps * sth],
        [-sps * cth * cph - cps * sph, -sps * cth * sph + cps * cph, sps * sth],
        [sth * cph, sth * sph, cth],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def matrix_to_euler(
    matrix: Float[ArrayLike, "*b 3 3"],
) -> tuple[Float[Array, "*b"], Float[Array, "*b"], Float[Array, "*b"]]:
    """Inverse of :func:`euler_to_matrix`: (rot, tilt, psi) in degrees, tilt in [0, 180].

    At tilt = 0 or 180 (gimbal lock) only rot + psi (or rot - psi) is defined; psi is set to 0
    there, as RELION does.

    Arguments:
        matrix: RELION rotation matrices.
    """
    m = jnp.asarray(matrix)
    cth = jnp.clip(m[..., 2, 2], -1.0, 1.0)
    sth = jnp.sqrt(jnp.maximum(0.0, m[..., 2, 0] ** 2 + m[..., 2, 1] ** 2))
    tilt = jnp.arctan2(sth, cth)
    locked = sth < 16 * jnp.finfo(m.dtype).eps
    rot = jnp.where(
        locked, jnp.arctan2(-m[..., 1, 0], m[..., 1, 1]), jnp.arctan2(m[..., 2, 1], m[..., 2, 0])
    )
    # At gimbal lock with tilt = 180 the sign of m[1, 0] flips; arctan2 of row 1 covers both.
    psi = jnp.where(locked, 0.0, jnp.arctan2(m[..., 1, 2], -m[..., 0, 2]))
    return jnp.rad2deg(rot), jnp.rad2deg(tilt), jnp.rad2deg(psi)


def quaternion_to_matrix(q: Float[ArrayLike, "*b 4"]) -> Float[Array, "*b 3 3"]:
    """Rotation matrix of a quaternion; active rotation ``R @ r``.

    Arguments:
        q: quaternions (w, x, y, z), scalar first; normalised here (need not be unit).
    """
    qa = jnp.asarray(q)
    qa = qa / jnp.linalg.norm(qa, axis=-1, keepdims=True)
    w, x, y, z = qa[..., 0], qa[..., 1], qa[..., 2], qa[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def matrix_to_quaternion(matrix: Float[ArrayLike, "*b 3 3"]) -> Float[Array, "*b 4"]:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (Shepperd's method, branch-free).

    Arguments:
        matrix: rotation matrices (proper, orthogonal).
    """
    m = jnp.asarray(matrix)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate solutions; pick the numerically largest denominator.
    cands = jnp.stack(
        [
            jnp.stack(
                [
                    1 + tr,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            jnp.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + 2 * m[..., 0, 0] - tr,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            jnp.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 + 2 * m[..., 1, 1] - tr,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            jnp.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 + 2 * m[..., 2, 2] - tr,
                ],
                -1,
            ),
        ],
        axis=-2,
    )
    diag = jnp.stack(
        [1 + tr, 1 + 2 * m[..., 0, 0] - tr, 1 + 2 * m[..., 1, 1] - tr, 1 + 2 * m[..., 2, 2] - tr],
        -1,
    )
    best = jnp.argmax(diag, axis=-1)
    q = jnp.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    return q * jnp.where(q[..., :1] < 0, -1.0, 1.0)


def random_quaternions(
    key: PRNGKeyArray, n: int, dtype: DTypeLike = jnp.float32
) -> Float[Array, "{n} 4"]:
    """Uniformly distributed unit quaternions (w, x, y, z), w >= 0 (Haar measure on SO(3)).

    Drawn as normalised 4-D Gaussians.

    Arguments:
        key: a JAX random key.
        n: the number of quaternions.
        dtype: floating dtype of the result.
    """
    q = jax.random.normal(key, (n, 4), dtype=dtype)
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    return q * jnp.where(q[:, :1] < 0, -1.0, 1.0)


def random_rotations(
    key: PRNGKeyArray, n: int, dtype: DTypeLike = jnp.float32
) -> Float[Array, "{n} 3 3"]:
    """``n`` rotation matrices drawn uniformly from SO(3) (Haar measure).

    Arguments:
        key: a JAX random key.
        n: the number of rotations.
        dtype: floating dtype of the result.
    """
    return quaternion_to_matrix(random_quaternions(key, n, dtype))


def random_euler_angles(
    key: PRNGKeyArray, n: int, dtype: DTypeLike = jnp.float32
) -> tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, " n"]]:
    """Uniform random rotations expressed as RELION (rot, tilt, psi) in degrees.

    Arguments:
        key: a JAX random key.
        n: the number of rotations.
        dtype: floating dtype of the angles.
    """
    return matrix_to_euler(random_rotations(key, n, dtype))
