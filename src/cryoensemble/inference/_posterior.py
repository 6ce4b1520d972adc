"""Bayesian posterior of the population weights: an exact Gibbs sampler over latent assignments.

Model: w ~ Dirichlet(alpha), z_n | w ~ Categorical(w), y_n | z_n = m has log-likelihood L[n, m].
The Gibbs sampler alternates the two exact conditionals

    z_n | w, y ~ Categorical(softmax(L[n, :] + log w))     (independently for every particle)
    w | z ~ Dirichlet(alpha + counts(z))

(jit-compiled, ``lax.scan`` over iterations, vectorised over particles). Rows of L are shifted by
their maximum first (the conditionals do not change), so float32 is exact enough for any L.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from cryoensemble.errors import InputError
from cryoensemble.inference._weights import check_likelihood_matrix

__all__ = ["effective_sample_size", "sample_posterior_gibbs", "summarize_samples"]


def _gibbs(key, L, alpha, w0, n_iter: int):
    m = L.shape[1]

    def step(w, k):
        kz, kw = jax.random.split(k)
        logits = L + jnp.log(w)[None, :]
        z = jax.random.categorical(kz, logits, axis=1)
        counts = jnp.zeros(m, L.dtype).at[z].add(1.0)
        w_new = jax.random.dirichlet(kw, alpha + counts).astype(L.dtype)
        w_new = jnp.maximum(w_new, jnp.finfo(L.dtype).tiny)
        w_new = w_new / jnp.sum(w_new)
        return w_new, w_new

    _, samples = jax.lax.scan(step, w0, jax.random.split(key, n_iter))
    return samples


_gibbs_jit = jax.jit(_gibbs, static_argnums=(4,))


def sample_posterior_gibbs(
    key: PRNGKeyArray | Array,
    L: Float[ArrayLike, "n m"],
    alpha: float | Float[ArrayLike, " m"] = 1.0,
    n_samples: int = 2000,
    burn_in: int = 500,
    thin: int = 1,
    init: Float[ArrayLike, " m"] | None = None,
) -> Float[np.ndarray, "s m"]:
    """Posterior samples (n_samples, M) of the weights given the likelihood matrix ``L``.

    Arguments:
        key: the JAX random key of the chain.
        L: (n, M) log-likelihoods, nats (finite).
        alpha: the Dirichlet concentration (scalar or (M,); 1 = uniform on the simplex; add
            prior counts, e.g. cluster sizes, to it).
        n_samples: samples returned.
        burn_in: first Gibbs iterations discarded.
        thin: keep every ``thin``-th iteration after the burn-in.
        init: (M,) starting weights (default uniform).
    """
    Lh = check_likelihood_matrix(L)
    m = Lh.shape[1]
    a = np.broadcast_to(np.asarray(alpha, np.float64), (m,))
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise InputError(f"Dirichlet concentrations must be finite and > 0, got {list(a)}")
    if n_samples < 1 or burn_in < 0 or thin < 1:
        raise InputError("n_samples >= 1, burn_in >= 0 and thin >= 1 are required")
    Ls = (Lh - Lh.max(axis=1, keepdims=True)).astype(np.float32)
    w0 = np.full(m, 1.0 / m) if init is None else np.asarray(init, np.float64) / np.sum(init)
    n_iter = int(burn_in) + int(n_samples) * int(thin)
    s = _gibbs_jit(
        key, jnp.asarray(Ls), jnp.asarray(a, jnp.float32), jnp.asarray(w0, jnp.float32), n_iter
    )
    return np.asarray(s, np.float64)[int(burn_in) :: int(thin)][: int(n_samples)]


def effective_sample_size(x: Float[ArrayLike, "n ..."]) -> Float[np.ndarray, " m"]:
    """ESS of each column of ``x`` (n, M) from the autocorrelation (Geyer's initial positive
    sequence of paired sums).

    Arguments:
        x: (n,) or (n, M) chain of samples.
    """
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        v = x[:, j] - x[:, j].mean()
        var = v @ v / n
        if var <= 0 or n < 4:
            out[j] = float(n)
            continue
        f = np.fft.rfft(v, 2 * n)
        acf = np.fft.irfft(f * np.conj(f))[:n] / (n * var)
        tau = -1.0
        for k in range(0, n - 1, 2):
            pair = acf[k] + acf[k + 1]
            if pair <= 0:
                break
            tau += 2 * pair
        out[j] = n / max(tau, 1e-12)
    return np.minimum(out, n * np.log10(max(n, 10)))


def summarize_samples(samples: Float[ArrayLike, "s m"], level: float = 0.9) -> dict:
    """Posterior mean, median, std, equal-tailed ``level`` interval and ESS per structure.

    Arguments:
        samples: (n_samples, M) posterior samples of the weights.
        level: the credible level of the interval, in (0, 1).
    """
    s = np.asarray(samples, np.float64)
    if not 0 < level < 1:
        raise InputError(f"credible level must be in (0, 1), got {level}")
    q = (1 - level) / 2
    return {
        "mean": s.mean(axis=0),
        "median": np.median(s, axis=0),
        "std": s.std(axis=0, ddof=1) if len(s) > 1 else np.zeros(s.shape[1]),
        "lower": np.quantile(s, q, axis=0),
        "upper": np.quantile(s, 1 - q, axis=0),
        "credible_level": float(level),
        "ess": effective_sample_size(s),
        "n_samples": int(len(s)),
    }
