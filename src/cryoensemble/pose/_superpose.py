"""Closed-form rotation solvers: DRaM (EnP, OnP), Kabsch, Horn, and nearest-rotation corrections.

Conventions (see ``docs/orientation.md``):

* point sets are arrays of shape ``(n, 3)`` (reference) and ``(n, 3)`` (target, EnP) or
  ``(n, 2)`` (orthographic projection, OnP); both are centred on their (weighted) centroids;
* the returned rotation ``R`` (3 x 3, proper: ``R^T R = I``, ``det R = +1``) maps reference to
  target, ``target_i ~ R @ reference_i``; for OnP the first two rows of ``R @ reference_i``
  approximate ``projected_i``;
* the DRaM (determinant ratio matrix, Hanson & Hanson 2025) is the unconstrained least-squares
  matrix ``Y X^T (X X^T)^-1`` evaluated by Cramer's rule: entry ``(j, k)`` is
  ``det(S with column k replaced by C[j]) / det(S)`` with ``S = X X^T`` the (weighted) reference
  self-covariance and ``C = Y X^T`` the cross-covariance;
* with noisy data the DRaM is not orthogonal and is corrected to the nearest proper rotation in
  the Frobenius norm, by SVD (``nearest_rotation_svd``) or by the top eigenvector of a 4 x 4
  symmetric matrix (``nearest_rotation_quaternion``, Bar-Itzhack 2000).

The public entry points (``dram_enp``, ``dram_onp``, ``kabsch``, ``horn``, ``superpose``,
``rmsd``) validate their input on the host with numpy and raise :class:`InputError`; the
``*_batched`` functions are jit-compiled, vmapped over a leading batch axis and do no validation.
All functions compute in the dtype of their input: float32 by default, float64 when jax x64 is on.
The validated entry points take any ``ArrayLike`` and check shapes themselves (an
:class:`InputError` that names the argument, rather than a type-checker error); their results and
the unvalidated kernels carry jaxtyping shape annotations. Coordinates are in any length unit
(Angstrom for atomic models); rotations are dimensionless, angles in degrees.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.pose._euler import quaternion_to_matrix

__all__ = [
    "dram_enp",
    "dram_onp",
    "kabsch",
    "horn",
    "dram_enp_matrix",
    "dram_onp_matrix",
    "dram_enp_batched",
    "dram_onp_batched",
    "dram_enp_matrix_batched",
    "dram_onp_matrix_batched",
    "kabsch_batched",
    "horn_batched",
    "nearest_rotation_svd",
    "nearest_rotation_quaternion",
    "rotation_angle",
    "superpose",
    "rigid_transform",
    "superposed_rmsd",
    "superpose_model",
    "rmsd",
]

#: Inputs of the validated entry points: anything numpy or JAX turns into an array (nested lists
#: included); shapes and dtypes are checked by :func:`_validate` with messages naming the argument.
Points = ArrayLike | npt.ArrayLike

CORRECTIONS = ("svd", "quaternion")
METHODS = ("dram", "kabsch", "horn")
#: relative singular-value threshold below which a (centred, weighted) point set counts as
#: having lower rank (coplanar, collinear, coincident).
RANK_TOLERANCE = 1e-5


# --------------------------------------------------------------------------------------------
# small linear algebra on (..., 3, 3) arrays
# --------------------------------------------------------------------------------------------


def _det3_columns(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """Determinant of the 3 x 3 matrix with columns ``a, b, c`` (triple product)."""
    return jnp.sum(a * jnp.cross(b, c), axis=-1)


def _det3(m: jax.Array) -> jax.Array:
    """Determinant of (..., 3, 3) matrices."""
    return _det3_columns(m[..., :, 0], m[..., :, 1], m[..., :, 2])


def nearest_rotation_svd(m: Float[ArrayLike, "*b 3 3"]) -> Float[Array, "*b 3 3"]:
    """Proper rotation closest to ``m`` (..., 3, 3) in the Frobenius norm, by SVD.

    ``m = U diag(s) V^T`` gives ``R = U diag(1, 1, sign det(U V^T)) V^T``, the maximiser of
    ``trace(R^T m)`` over SO(3) (the Kabsch / orthogonal-Procrustes solution).

    Arguments:
        m: real 3 x 3 matrices (dimensionless), with any leading batch axes.
    """
    m = jnp.asarray(m)
    u, _, vt = jnp.linalg.svd(m)
    d = jnp.where(_det3(u) * _det3(vt) < 0, -1.0, 1.0).astype(m.dtype)
    u = u.at[..., :, 2].multiply(d[..., None])
    return u @ vt


def _horn_matrix(m: jax.Array) -> jax.Array:
    """4 x 4 symmetric ``K`` with ``q^T K q = trace(R(q)^T m)`` for unit quaternions ``q``."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    rows = [
        [m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01],
        [m21 - m12, m00 - m11 - m22, m01 + m10, m02 + m20],
        [m02 - m20, m01 + m10, -m00 + m11 - m22, m12 + m21],
        [m10 - m01, m02 + m20, m12 + m21, -m00 - m11 + m22],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def nearest_rotation_quaternion(m: Float[ArrayLike, "*b 3 3"]) -> Float[Array, "*b 3 3"]:
    """Proper rotation closest to ``m`` (..., 3, 3) in the Frobenius norm, by a quaternion.

    ``||R - m||^2 = const - 2 trace(R^T m)`` and ``trace(R(q)^T m) = q^T K q`` with ``K`` the
    4 x 4 symmetric matrix built from ``m`` (Bar-Itzhack 2000; Horn 1987 for ``m`` the
    cross-covariance), so the best rotation is ``R(q)`` for the eigenvector ``q`` of the largest
    eigenvalue of ``K``.  Same answer as :func:`nearest_rotation_svd` (up to rounding) whenever
    that eigenvalue is simple.

    Arguments:
        m: real 3 x 3 matrices (dimensionless), with any leading batch axes.
    """
    m = jnp.asarray(m)
    _, vecs = jnp.linalg.eigh(_horn_matrix(m))
    return quaternion_to_matrix(vecs[..., :, -1])


def _correct(m: jax.Array, correction: str) -> jax.Array:
    if correction == "svd":
        return nearest_rotation_svd(m)
    if correction == "quaternion":
        return nearest_rotation_quaternion(m)
    raise InputError(f"correction must be one of {CORRECTIONS}, got {correction!r}")


def rotation_angle(
    r1: Float[ArrayLike, "*b 3 3"], r2: Float[ArrayLike, "*b 3 3"] | None = None
) -> Float[Array, "*b"]:
    """Rotation angle in degrees, in [0, 180], of ``r1`` or, given ``r2``, of ``r1^T r2``.

    Accurate for small angles too (from the antisymmetric part, not only the trace).

    Arguments:
        r1: rotation matrices.
        r2: optional second rotations; the result is then the angular gap between the two.
    """
    r1 = jnp.asarray(r1)
    rel = r1 if r2 is None else jnp.swapaxes(r1, -1, -2) @ jnp.asarray(r2)
    tr = jnp.trace(rel, axis1=-2, axis2=-1)
    # the antisymmetric part keeps precision for small angles: sin = |vee(rel - rel^T)| / 2
    v = jnp.stack(
        [
            rel[..., 2, 1] - rel[..., 1, 2],
            rel[..., 0, 2] - rel[..., 2, 0],
            rel[..., 1, 0] - rel[..., 0, 1],
        ],
        axis=-1,
    )
    return jnp.degrees(jnp.arctan2(0.5 * jnp.linalg.norm(v, axis=-1), 0.5 * (tr - 1.0)))


# --------------------------------------------------------------------------------------------
# single-instance cores (pure, traceable; vmapped for the batched API)
# --------------------------------------------------------------------------------------------


def _centred_moments(x: jax.Array, y: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weighted self-covariance ``S = X W X^T`` (3 x 3) and cross-covariance ``C = Y W X^T``.

    Both sets are centred on their weighted centroids and divided by the same factor, the RMS
    radius of the reference (rotations are unchanged; keeps float32 determinants in range).
    """
    wn = w / jnp.sum(w)
    xc = x - wn @ x
    yc = y - wn @ y
    scale = jnp.sqrt(jnp.sum(wn[:, None] * xc * xc))
    scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
    xc = xc / scale
    yc = yc / scale
    s = (xc * wn[:, None]).T @ xc
    c = (yc * wn[:, None]).T @ xc
    return s, c


def _cross_covariance(x: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    return _centred_moments(x, y, w)[1]


def _cramer_rows(s: jax.Array, c: jax.Array) -> jax.Array:
    """Solve ``M S = C`` row by row with Cramer's rule (``S`` symmetric 3 x 3, ``C`` k x 3).

    Row ``j`` of ``M`` solves ``S m_j = C[j]``, so
    ``M[j, k] = det(S with column k replaced by C[j]) / det(S)``.
    """
    s0, s1, s2 = s[:, 0], s[:, 1], s[:, 2]
    det_s = _det3_columns(s0, s1, s2)
    det_0 = _det3_columns(c, s1, s2)  # column 0 replaced, one value per row of c
    det_1 = _det3_columns(s0, c, s2)
    det_2 = _det3_columns(s0, s1, c)
    return jnp.stack([det_0, det_1, det_2], axis=-1) / det_s


def _dram_enp_matrix_core(x, y, w):
    s, c = _centred_moments(x, y, w)
    return _cramer_rows(s, c)


def _dram_onp_matrix_core(x, p, w):
    s, c = _centred_moments(x, p, w)
    return _cramer_rows(s, c)


def _complete_onp(m2: jax.Array) -> jax.Array:
    """3 x 3 matrix from the 2 x 3 OnP DRaM: third row = cross product of the first two."""
    return jnp.concatenate([m2, jnp.cross(m2[0], m2[1])[None, :]], axis=0)


def _dram_enp_core(x, y, w, correction="svd"):
    return _correct(_dram_enp_matrix_core(x, y, w), correction)


def _dram_onp_core(x, p, w, correction="svd"):
    return _correct(_complete_onp(_dram_onp_matrix_core(x, p, w)), correction)


def _kabsch_core(x, y, w):
    return nearest_rotation_svd(_cross_covariance(x, y, w))


def _horn_core(x, y, w):
    return nearest_rotation_quaternion(_cross_covariance(x, y, w))


def _ones_weights(x: jax.Array, weights):
    return jnp.ones(x.shape[:-1], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)


def _batched(core: Callable, name: str, doc: str, with_correction: bool = False) -> Callable:
    """Jit-compiled version of ``core(x, y, w[, correction])`` vmapped over a leading axis."""

    def with_corr(
        reference: Float[ArrayLike, "b n 3"],
        target: Float[ArrayLike, "b n d"],
        weights: Float[ArrayLike, "b n"] | None = None,
        correction: str = "svd",
    ) -> Float[Array, "b 3 3"]:
        x = jnp.asarray(reference)
        w = _ones_weights(x, weights)
        return jax.vmap(functools.partial(core, correction=correction))(x, target, w)

    def without(
        reference: Float[ArrayLike, "b n 3"],
        target: Float[ArrayLike, "b n d"],
        weights: Float[ArrayLike, "b n"] | None = None,
    ) -> Float[Array, "b _ 3"]:
        x = jnp.asarray(reference)
        w = _ones_weights(x, weights)
        return jax.vmap(core)(x, target, w)

    fn: Callable = with_corr if with_correction else without

    fn.__name__ = fn.__qualname__ = name
    target = "projected" if "OnP" in doc else "target"
    fn.__doc__ = (
        doc
        + "\n\nJit-compiled and vmapped; no input validation (see the unbatched form)."
        + "\n\nArguments:\n    reference: points (b, n, 3), any length unit."
        + f"\n    {target}: points (b, n, {2 if target == 'projected' else 3}), same unit."
        + "\n    weights: non-negative per-point weights (b, n), or None (all 1)."
        + ('\n    correction: "svd" or "quaternion".' if with_correction else "")
    )
    statics = ("correction",) if with_correction else ()
    return jax.jit(fn, static_argnames=statics)


_CORR = ' ``correction`` is "svd" or "quaternion".'
dram_enp_batched = _batched(
    _dram_enp_core,
    "dram_enp_batched",
    "DRaM EnP: reference (b, n, 3), target (b, n, 3), weights (b, n) or None -> (b, 3, 3)." + _CORR,
    with_correction=True,
)
dram_onp_batched = _batched(
    _dram_onp_core,
    "dram_onp_batched",
    "DRaM OnP: reference (b, n, 3), projected (b, n, 2), weights (b, n) or None -> (b, 3, 3)."
    + _CORR,
    with_correction=True,
)
kabsch_batched = _batched(
    _kabsch_core,
    "kabsch_batched",
    "Kabsch (SVD): reference (b, n, 3), target (b, n, 3), weights (b, n) or None -> (b, 3, 3).",
)
horn_batched = _batched(
    _horn_core,
    "horn_batched",
    "Horn (quaternion): reference (b, n, 3), target (b, n, 3), weights (b, n) | None -> (b, 3, 3).",
)
dram_enp_matrix_batched = _batched(
    _dram_enp_matrix_core,
    "dram_enp_matrix_batched",
    "Uncorrected DRaM: reference (b, n, 3), target (b, n, 3), weights (b, n) or None -> (b, 3, 3).",
)
dram_onp_matrix_batched = _batched(
    _dram_onp_matrix_core,
    "dram_onp_matrix_batched",
    "Uncorrected OnP DRaM: (b, n, 3), projected (b, n, 2), weights (b, n) or None -> (b, 2, 3).",
)

_dram_enp_jit = jax.jit(_dram_enp_core, static_argnames=("correction",))
_dram_onp_jit = jax.jit(_dram_onp_core, static_argnames=("correction",))
_dram_enp_matrix_jit = jax.jit(_dram_enp_matrix_core)
_dram_onp_matrix_jit = jax.jit(_dram_onp_matrix_core)
_kabsch_jit = jax.jit(_kabsch_core)
_horn_jit = jax.jit(_horn_core)


# --------------------------------------------------------------------------------------------
# host-side validation
# --------------------------------------------------------------------------------------------


def _is_traced(*arrays) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _host_array(name: str, a) -> np.ndarray:
    try:
        arr = np.asarray(a)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise TypeError
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a numeric array, got {type(a).__name__}") from None


def _validate(
    reference,
    target,
    weights,
    *,
    target_name: str,
    target_dim: int,
    min_points: int,
    min_rank: int,
) -> None:
    """Check shapes, finiteness and degeneracy on the host; raise :class:`InputError`."""
    x = _host_array("reference", reference)
    y = _host_array(target_name, target)
    if x.ndim != 2 or x.shape[1] != 3:
        raise InputError(f"reference must have shape (n, 3), got {x.shape}")
    if y.ndim != 2 or y.shape[1] != target_dim:
        raise InputError(f"{target_name} must have shape (n, {target_dim}), got {y.shape}")
    n = x.shape[0]
    if y.shape[0] != n:
        raise InputError(
            f"reference and {target_name} must have the same number of points, "
            f"got {n} and {y.shape[0]}"
        )
    if n < min_points:
        raise InputError(f"need at least {min_points} points, got {n}")
    for name, arr in (("reference", x), (target_name, y)):
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise InputError(
                f"{name} has non-finite (NaN or inf) coordinates at point(s) "
                f"{np.flatnonzero(bad)[:10].tolist()}"
            )
    if weights is None:
        w = np.ones(n)
    else:
        w = _host_array("weights", weights)
        if w.shape != (n,):
            raise InputError(f"weights must have shape ({n},), got {w.shape}")
        if not np.isfinite(w).all():
            raise InputError("weights must be finite (found NaN or inf)")
        if (w < 0).any():
            raise InputError("weights must be >= 0")
        n_pos = int(np.count_nonzero(w))
        if n_pos < min_points:
            raise InputError(f"need at least {min_points} points with weight > 0, got {n_pos}")
    xc = x - (w @ x) / w.sum()
    sv = np.linalg.svd(np.sqrt(w)[:, None] * xc, compute_uv=False)
    if sv[0] == 0:
        raise InputError("reference points all coincide: the rotation is undetermined")
    rank = int(np.sum(sv > RANK_TOLERANCE * sv[0]))
    if rank < min_rank:
        what = {1: "collinear", 2: "coplanar"}[rank]
        need = {2: "3 non-collinear", 3: "4 non-coplanar"}[min_rank]
        raise InputError(
            f"reference points are {what} (singular values {np.array2string(sv, precision=3)}): "
            f"this solver needs at least {need} points"
        )


def _device_arrays(*arrays):
    """Convert to jax arrays of one floating dtype (input dtype, else the default float)."""
    out = [jnp.asarray(a) for a in arrays if a is not None]
    dt = jnp.result_type(*out)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.zeros((), dtype=float).dtype
    it = iter(o.astype(dt) for o in out)
    return [None if a is None else next(it) for a in arrays]


def _check_correction(correction: str) -> None:
    if correction not in CORRECTIONS:
        raise InputError(f"correction must be one of {CORRECTIONS}, got {correction!r}")


def _prepare(reference, target, weights, **kw):
    if not _is_traced(reference, target, weights):
        _validate(reference, target, weights, **kw)
    x, y, w = _device_arrays(reference, target, weights)
    return x, y, _ones_weights(x, w)


_ENP = dict(target_name="target", target_dim=3, min_points=4, min_rank=3)
_ONP = dict(target_name="projected", target_dim=2, min_points=4, min_rank=3)
_PROCRUSTES = dict(target_name="target", target_dim=3, min_points=3, min_rank=2)


# --------------------------------------------------------------------------------------------
# public, validated entry points
# --------------------------------------------------------------------------------------------


def dram_enp(
    reference: Points,
    target: Points,
    weights: Points | None = None,
    correction: str = "svd",
) -> Float[Array, "3 3"]:
    """Rotation ``R`` (3 x 3, proper) with ``target_i ~ R @ reference_i``, by DRaM (EnP).

    Both (n, 3) point sets are centred on their (weighted) centroids; the DRaM
    ``Y X^T (X X^T)^-1`` is evaluated by Cramer's rule and corrected to the nearest proper
    rotation (``correction="svd"`` or ``"quaternion"``).  Exact for noise-free data; with noise
    close to, but not exactly, the least-squares optimum (:func:`kabsch`).  Needs at least 4
    non-coplanar reference points (the 3 x 3 self-covariance must be invertible).

    Arguments:
        reference: points (n, 3), any length unit.
        target: points (n, 3), same unit.
        weights: optional non-negative per-point weights (n,) (default: all 1).
        correction: ``"svd"`` or ``"quaternion"``, the nearest-rotation correction.
    """
    _check_correction(correction)
    x, y, w = _prepare(reference, target, weights, **_ENP)
    return _dram_enp_jit(x, y, w, correction=correction)


def dram_onp(
    reference: Points,
    projected: Points,
    weights: Points | None = None,
    correction: str = "svd",
) -> Float[Array, "3 3"]:
    """Rotation ``R`` (3 x 3, proper) with ``(R @ reference_i)[:2] ~ projected_i`` (orthographic).

    ``reference`` (n, 3) and ``projected`` (n, 2) are centred (the in-plane shift drops out);
    the 2 x 3 DRaM gives the first two rows, their cross product the third, and the resulting
    3 x 3 matrix is corrected to the nearest proper rotation.  Needs at least 4 non-coplanar
    reference points.

    Arguments:
        reference: points (n, 3), any length unit.
        projected: their orthographic projections (n, 2), same unit.
        weights: optional non-negative per-point weights (n,) (default: all 1).
        correction: ``"svd"`` or ``"quaternion"``, the nearest-rotation correction.
    """
    _check_correction(correction)
    x, p, w = _prepare(reference, projected, weights, **_ONP)
    return _dram_onp_jit(x, p, w, correction=correction)


def dram_enp_matrix(
    reference: Points, target: Points, weights: Points | None = None
) -> Float[Array, "3 3"]:
    """Uncorrected 3 x 3 DRaM ``Y X^T (X X^T)^-1`` (centred, weighted) by Cramer's rule.

    Arguments:
        reference: points (n, 3), any length unit.
        target: points (n, 3), same unit.
        weights: optional non-negative per-point weights (n,) (default: all 1).
    """
    x, y, w = _prepare(reference, target, weights, **_ENP)
    return _dram_enp_matrix_jit(x, y, w)


def dram_onp_matrix(
    reference: Points, projected: Points, weights: Points | None = None
) -> Float[Array, "2 3"]:
    """Uncorrected 2 x 3 OnP DRaM ``P X^T (X X^T)^-1`` (centred, weighted) by Cramer's rule.

    Arguments:
        reference: points (n, 3), any length unit.
        projected: their orthographic projections (n, 2), same unit.
        weights: optional non-negative per-point weights (n,) (default: all 1).
    """
    x, p, w = _prepare(reference, projected, weights, **_ONP)
    return _dram_onp_matrix_jit(x, p, w)


def kabsch(reference: Points, target: Points, weights: Points | None = None) -> Float[Array, "3 3"]:
    """Least-squares proper rotation with ``target_i ~ R @ reference_i`` by SVD (Kabsch 1976).

    Needs at least 3 non-collinear reference points.

    Arguments:
        reference: points (n, 3), any length unit.
        target: points (n, 3), same unit.
        weights: optional non-negative per-point weights (n,) (default: all 1).
    """
    x, y, w = _prepare(reference, target, weights, **_PROCRUSTES)
    return _kabsch_jit(x, y, w)


def horn(reference: Points, target: Points, weights: Points | None = None) -> Float[Array, "3 3"]:
    """Least-squares proper rotation by the quaternion eigenvector method (Horn 1987).

    Same problem and answer as :func:`kabsch`.  Needs at least 3 non-collinear reference points.

    Arguments:
        reference: points (n, 3), any length unit.
        target: points (n, 3), same unit.
        weights: optional non-negative per-point weights (n,) (default: all 1).
    """
    x, y, w = _prepare(reference, target, weights, **_PROCRUSTES)
    return _horn_jit(x, y, w)


_SOLVERS = {"dram": dram_enp, "kabsch": kabsch, "horn": horn}


def rmsd(a: Points, b: Points, weights: Points | None = None) -> Float[Array, ""]:
    """Root-mean-square deviation between two point sets, in their unit (no superposition).

    Arguments:
        a: points (n, d).
        b: points (n, d), same unit.
        weights: optional non-negative per-point weights (n,): a weighted mean of the squares.
    """
    if not _is_traced(a, b, weights):
        x = _host_array("a", a)
        y = _host_array("b", b)
        if x.shape != y.shape or x.ndim != 2:
            raise InputError(
                f"a and b must have the same shape (n, d), got {x.shape} and {y.shape}"
            )
        if weights is not None and np.shape(weights) != (x.shape[0],):
            raise InputError(f"weights must have shape ({x.shape[0]},), got {np.shape(weights)}")
    x, y, w = _device_arrays(a, b, weights)
    w = _ones_weights(x, w)
    return jnp.sqrt(jnp.sum(w * jnp.sum((x - y) ** 2, axis=-1)) / jnp.sum(w))


def superpose(
    mobile: Points,
    reference: Points,
    weights: Points | None = None,
    method: str = "dram",
) -> tuple[Float[Array, "n 3"], Float[Array, "3 3"], Float[Array, "3"], Float[Array, ""]]:
    """Align ``mobile`` onto ``reference`` with a rotation and a translation.

    Returns ``(aligned_mobile, R, t, rmsd)`` with ``aligned_mobile = mobile @ R.T + t``,
    ``reference_i ~ R @ mobile_i + t`` and ``rmsd`` the (weighted) RMSD after alignment, in the
    unit of the input. DRaM is exact for noise-free data and close to the least-squares optimum
    (Kabsch, Horn) otherwise.

    Arguments:
        mobile: points (n, 3) to move, any length unit.
        reference: points (n, 3) to align onto, same unit.
        weights: optional non-negative per-point weights (n,) (default: all 1).
        method: ``"dram"`` (default), ``"kabsch"`` or ``"horn"``.
    """
    if method not in _SOLVERS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    r = _SOLVERS[method](mobile, reference, weights)
    x, y, w = _device_arrays(mobile, reference, weights)
    w = _ones_weights(x, w)
    wn = w / jnp.sum(w)
    t = wn @ y - r @ (wn @ x)
    aligned = x @ r.T + t
    return aligned, r, t, rmsd(aligned, y, w)


def rigid_transform(
    mobile: Points, reference: Points, method: str = "kabsch"
) -> tuple[Float[np.ndarray, "3 3"], Float[np.ndarray, "3"]]:
    """Host-side ``(R, t)`` as float64 numpy arrays with ``reference ~ mobile @ R.T + t``.

    For moving whole models by a fit on some of their atoms: ``all_atoms @ R.T + t``; ``t`` is in
    the unit of the input.

    Arguments:
        mobile: points (n, 3) to move.
        reference: points (n, 3) to align onto, same unit.
        method: ``"kabsch"`` (default), ``"horn"`` or ``"dram"``.
    """
    _, r, t, _ = superpose(mobile, reference, method=method)
    return np.asarray(r, np.float64), np.asarray(t, np.float64)


def superposed_rmsd(a: Points, b: Points, method: str = "kabsch") -> float:
    """RMSD (unit of the input) between two point sets after optimal superposition.

    Arguments:
        a: points (n, 3).
        b: points (n, 3), same unit.
        method: ``"kabsch"`` (default), ``"horn"`` or ``"dram"``.
    """
    return float(superpose(a, b, method=method)[3])


@runtime_checkable
class _Model(Protocol):
    """What :func:`superpose_model` needs of a model (``cryoensemble.structure.AtomicModel``,
    which lives in a higher layer and so is not imported here)."""

    @property
    def positions(self) -> np.ndarray: ...

    @property
    def source(self) -> str: ...

    def selection(self, spec: str) -> Any: ...

    def with_positions(self, new_positions: np.ndarray) -> Any: ...


M = TypeVar("M", bound=_Model)


def superpose_model(
    mobile: M, reference: _Model, selection: str = "heavy", method: str = "kabsch"
) -> tuple[M, float]:
    """``mobile`` moved rigidly so that its ``selection`` atoms superpose onto ``reference``'s.

    Returns ``(moved_model, rmsd)``, the RMSD in Angstrom over the selected atoms. Both selections
    must hold the same atoms in the same order (else :class:`InputError`).

    Arguments:
        mobile: the model to move (an :class:`~cryoensemble.structure.AtomicModel`).
        reference: the model to align onto.
        selection: the atoms fitted (an ``AtomicModel.selection`` name, e.g. ``"heavy"``, ``"CA"``).
        method: ``"kabsch"`` (default), ``"horn"`` or ``"dram"``.
    """
    mob = mobile.selection(selection).positions
    ref = reference.selection(selection).positions
    if mob.shape != ref.shape:
        raise InputError(
            f"{mobile.source or 'model'}: {mob.shape[0]} atoms in selection {selection!r} but the "
            f"reference has {ref.shape[0]}; superposition needs the same atoms in the same order"
        )
    r, t = rigid_transform(mob, ref, method)
    moved = mobile.with_positions(np.asarray(mobile.positions, np.float64) @ r.T + t)
    return moved, superposed_rmsd(mob, ref, method)
