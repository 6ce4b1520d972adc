"""Population weights on the simplex from a likelihood matrix L (particles x structures).

Model: image n comes from structure z_n with P(z_n = m) = w_m, so
log p(Y | w) = sum_n log sum_m w_m exp(L[n, m]). With a Dirichlet(alpha) prior, alpha = 1 +
``prior_counts``, the MAP estimate is the fixed point of the EM (multiplicative) update

    r[n, m] = w_m exp(L[n, m]) / sum_k w_k exp(L[n, k])          (responsibilities)
    w_m <- (sum_n r[n, m] + c_m) / (N + sum_k c_k)                  (c = prior counts)

(maximum likelihood when c = 0). One implementation, :func:`em_weights` (JAX, jit-compiled, in
log space: rows of L may differ by 10^5 and stay exact); :func:`fit_weights_em` is its numpy entry
point, run in float64.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from cryoensemble.errors import InputError

__all__ = [
    "EMResult",
    "check_likelihood_matrix",
    "em_weights",
    "fit_weights_em",
    "held_out_check",
    "log_likelihood_weights",
    "responsibilities",
]


def check_likelihood_matrix(L, name: str = "likelihood matrix") -> np.ndarray:
    """``L`` as a float64 (n, M) array with n >= 1, M >= 1 and finite entries, else InputError.

    Arguments:
        L: log-likelihoods (particles x structures), nats.
        name: what ``L`` is called in the error message.
    """
    arr = np.asarray(L, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(
            f"{name} must be a non-empty (particles x structures) array, got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise InputError(f"{name} has non-finite entries (first in row {row})")
    return arr


def _prior(prior_counts, m: int) -> np.ndarray:
    if prior_counts is None:
        return np.zeros(m)
    c = np.broadcast_to(np.asarray(prior_counts, dtype=np.float64), (m,)).copy()
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise InputError(f"prior counts must be finite and >= 0, got {list(c)}")
    return c


def log_likelihood_weights(L, w) -> float:
    """sum_n log sum_m w_m exp(L[n, m]) (nats).

    Arguments:
        L: (n, M) log-likelihoods, nats.
        w: (M,) weights on the simplex.
    """
    L = check_likelihood_matrix(L)
    top = L.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return float(np.sum(top[:, 0] + np.log(np.exp(L - top) @ np.asarray(w, np.float64))))


def responsibilities(L: Float[ArrayLike, "n m"], w: Float[ArrayLike, " m"]) -> Float[Array, "n m"]:
    """r[n, m] = P(z_n = m | y_n, w): the posterior assignment probabilities (rows sum to 1).

    JAX (traceable; the EM and the ensemble optimizer's gradient use it). Computed as a softmax
    of L + log w over structures, so any row offset of L cancels exactly.

    Arguments:
        L: (n, M) log-likelihoods, nats.
        w: (M,) weights on the simplex (zeros allowed).
    """
    L = jnp.asarray(L)
    return jax.nn.softmax(L + jnp.log(jnp.asarray(w, L.dtype))[None, :], axis=1)


class EMResult(NamedTuple):
    """The outcome of :func:`em_weights`.

    Attributes:
        log_weights: (M,) natural logarithms of the weights.
        n_iterations: EM updates done.
        converged: the last update changed no weight by ``tol`` or more.
    """

    log_weights: Float[Array, " m"]
    n_iterations: Int[Array, ""]
    converged: Bool[Array, ""]


@functools.partial(jax.jit, static_argnames=("max_iter",))
def em_weights(
    L: Float[ArrayLike, "n m"],
    valid: Float[ArrayLike, " n"] | None = None,
    max_iter: int = 100,
    tol: float | Float[Array, ""] = 0.0,
    prior_counts: Float[ArrayLike, " m"] | None = None,
    init: Float[ArrayLike, " m"] | None = None,
) -> EMResult:
    """MAP (ML without ``prior_counts``) weights maximising
    sum_n valid_n log sum_m w_m exp(L[n, m]) + sum_m c_m log w_m, by EM from ``init``.

    Stops after ``max_iter`` updates or as soon as an update changes no weight by ``tol`` or
    more (``tol = 0``: exactly ``max_iter`` updates, as the ensemble optimizer's inner step
    does). JAX, jit-compiled; computes in the dtype of ``L``.

    Arguments:
        L: (n, M) log-likelihoods, nats (finite).
        valid: (n,) 1 for the rows that count, 0 for padding (default all rows).
        max_iter: largest number of EM updates (static).
        tol: convergence tolerance on max_m |w_new - w|.
        prior_counts: (M,) Dirichlet prior counts c >= 0 (default none).
        init: (M,) starting weights (default uniform).

    Returns:
        :class:`EMResult` (log-weights, iterations, converged).
    """
    L = jnp.asarray(L)
    n, m = L.shape
    dtype = L.dtype
    valid = jnp.ones(n, dtype) if valid is None else jnp.asarray(valid, dtype)
    c = jnp.zeros(m, dtype) if prior_counts is None else jnp.asarray(prior_counts, dtype)
    w0 = jnp.full(m, 1.0 / m, dtype) if init is None else jnp.asarray(init, dtype)
    w0 = w0 / jnp.sum(w0)
    total = jnp.maximum(jnp.sum(valid), 1.0) + jnp.sum(c)
    tiny = jnp.finfo(dtype).tiny

    def update(state):
        it, w, _ = state
        counts = valid @ responsibilities(L, w)  # sum_n r[n, m]
        w_new = (counts + c) / total
        w_new = jnp.maximum(w_new / jnp.sum(w_new), tiny)
        return it + 1, w_new, jnp.max(jnp.abs(w_new - w))

    def going(state):
        it, _, delta = state
        return (it < max_iter) & (delta >= tol)

    start = (jnp.asarray(0, jnp.int32), w0, jnp.asarray(jnp.inf, dtype))
    it, w, delta = jax.lax.while_loop(going, update, start)
    return EMResult(jnp.log(w), it, delta < tol)


def fit_weights_em(
    L, prior_counts=None, tol: float = 1e-8, max_iter: int = 100_000, init=None
) -> tuple[np.ndarray, int, bool]:
    """MAP (ML if no ``prior_counts``) weights by EM; returns ``(w, n_iterations, converged)``.

    The numpy entry point of :func:`em_weights`: validates the inputs and runs it in float64.
    Stops when max_m |w_new - w| < ``tol``.

    Arguments:
        L: (n, M) log-likelihoods, nats (finite).
        prior_counts: (M,) or scalar Dirichlet prior counts >= 0 (default none).
        tol: convergence tolerance on the weights.
        max_iter: largest number of EM updates.
        init: (M,) starting weights (default uniform).
    """
    L = check_likelihood_matrix(L)
    c = _prior(prior_counts, L.shape[1])
    w0 = None if init is None else np.asarray(init, np.float64)
    # float64: the weights are reported to 1e-8 and more (float32 rounds at ~6e-8)
    with jax.enable_x64(True):
        res = em_weights(L, None, int(max_iter), float(tol), c, w0)
        w = np.exp(np.asarray(res.log_weights, np.float64))
        return w / w.sum(), int(res.n_iterations), bool(res.converged)


def held_out_check(
    L, fraction: float = 0.2, seed: int = 0, prior_counts=None, tol: float = 1e-8
) -> dict:
    """Fit weights on a random (1 - ``fraction``) of the particles; score the rest.

    Returns the mean log predictive density per particle, sum_m w_m exp(L[n, m]), on the training
    and the validation particles for the fitted weights and for uniform weights, and the gains
    (fitted minus uniform). A validation gain much smaller than the training gain means
    over-fitting (too many structures for the data).

    Arguments:
        L: (n, M) log-likelihoods, nats (finite).
        fraction: the share of particles held out, in (0, 1).
        seed: the seed of the random split.
        prior_counts: (M,) Dirichlet prior counts of the fit (default none).
        tol: the EM tolerance.
    """
    L = check_likelihood_matrix(L)
    n, m = L.shape
    if not 0 < fraction < 1:
        raise InputError(f"held-out fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise InputError("the held-out check needs at least 2 particles")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = min(max(1, int(round(fraction * n))), n - 1)
    val, train = perm[:n_val], perm[n_val:]
    w, it, conv = fit_weights_em(L[train], prior_counts, tol=tol)
    uni = np.full(m, 1.0 / m)
    score = lambda rows, ww: log_likelihood_weights(L[rows], ww) / len(rows)
    out = {
        "fraction": float(fraction),
        "seed": int(seed),
        "n_train": int(len(train)),
        "n_validation": int(n_val),
        "weights_train": w.tolist(),
        "n_iterations": int(it),
        "converged": bool(conv),
        "train_mean_log_predictive": score(train, w),
        "train_uniform_mean_log_predictive": score(train, uni),
        "validation_mean_log_predictive": score(val, w),
        "validation_uniform_mean_log_predictive": score(val, uni),
    }
    out["train_gain"] = out["train_mean_log_predictive"] - out["train_uniform_mean_log_predictive"]
    out["validation_gain"] = (
        out["validation_mean_log_predictive"] - out["validation_uniform_mean_log_predictive"]
    )
    return out
