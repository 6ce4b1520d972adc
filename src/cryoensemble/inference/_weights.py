"""Population weights on the simplex from a likelihood matrix L (particles x structures).

Model: image n comes from structure z_n with P(z_n = m) = w_m, so
log p(Y | w) = sum_n log sum_m w_m exp(L[n, m]). With a Dirichlet(alpha) prior, alpha = 1 +
``prior_counts``, the MAP estimate is the fixed point of the EM (multiplicative) update

    r[n, m] = w_m exp(L[n, m]) / sum_k w_k exp(L[n, k])          (responsibilities)
    w_m <- (sum_n r[n, m] + c_m) / (N + sum_k c_k)                  (c = prior counts)

(maximum likelihood when c = 0). Every quantity is computed with the row maximum of L subtracted
(the log-sum-exp trick) in float64, so extremely peaked rows (L differences of 10^5) are exact.
"""

from __future__ import annotations

import numpy as np

from cryoensemble.errors import InputError

__all__ = [
    "check_likelihood_matrix",
    "fit_weights_em",
    "held_out_check",
    "log_likelihood_weights",
    "responsibilities",
]


def check_likelihood_matrix(L, name: str = "likelihood matrix") -> np.ndarray:
    """``L`` as a float64 (n, M) array with n >= 1, M >= 1 and finite entries, else InputError."""
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


def _shifted(L: np.ndarray):
    top = L.max(axis=1, keepdims=True)
    return np.exp(L - top), top[:, 0]


def log_likelihood_weights(L, w) -> float:
    """sum_n log sum_m w_m exp(L[n, m])."""
    L = check_likelihood_matrix(L)
    p, top = _shifted(L)
    with np.errstate(divide="ignore"):
        return float(np.sum(top + np.log(p @ np.asarray(w, np.float64))))


def responsibilities(L, w) -> np.ndarray:
    """r[n, m] = P(z_n = m | y_n, w) (rows sum to 1)."""
    L = check_likelihood_matrix(L)
    with np.errstate(divide="ignore"):
        a = L + np.log(np.asarray(w, np.float64))[None, :]
    a -= a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


def fit_weights_em(
    L, prior_counts=None, tol: float = 1e-8, max_iter: int = 100_000, init=None
) -> tuple[np.ndarray, int, bool]:
    """MAP (ML if no ``prior_counts``) weights by EM; returns ``(w, n_iterations, converged)``.

    Stops when max_m |w_new - w| < ``tol``. ``init`` defaults to uniform weights.
    """
    L = check_likelihood_matrix(L)
    n, m = L.shape
    c = _prior(prior_counts, m)
    p, _ = _shifted(L)
    w = np.full(m, 1.0 / m) if init is None else np.asarray(init, np.float64) / np.sum(init)
    tiny = np.finfo(np.float64).tiny
    for it in range(1, int(max_iter) + 1):
        denom = np.maximum(p @ w, tiny)
        counts = w * (p.T @ (1.0 / denom))  # sum_n r[n, m]
        w_new = (counts + c) / (n + c.sum())
        w_new /= w_new.sum()
        delta = float(np.max(np.abs(w_new - w)))
        w = w_new
        if delta < tol:
            return w, it, True
    return w, int(max_iter), False


def held_out_check(
    L, fraction: float = 0.2, seed: int = 0, prior_counts=None, tol: float = 1e-8
) -> dict:
    """Fit weights on a random (1 - ``fraction``) of the particles; score the rest.

    Returns the mean log predictive density per particle, sum_m w_m exp(L[n, m]), on the training
    and the validation particles for the fitted weights and for uniform weights, and the gains
    (fitted minus uniform). A validation gain much smaller than the training gain means
    over-fitting (too many structures for the data).
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
