"""Log-likelihoods of one particle image given one model image (pure JAX, one image at a time).

Notation: y the observed image, x the model image (the pipeline's noiseless image of a structure at
the particle's pose and CTF), m a binary mask (all ones if none), N = sum(m) the number of pixels
used, and sums run over the pixels inside the mask. Formulas (see ``docs/likelihood.md``):

White Gaussian noise, known standard deviation sigma::

    log p(y | x) = -sum m (y - x)^2 / (2 sigma^2) - (N / 2) log(2 pi sigma^2)

Marginal (scale s and offset b with flat priors, sigma with the Jeffreys prior 1/sigma)::

    y = s x + b + noise,  C = [x, 1] (N x 2),  r = y - C beta_hat (least-squares residual),
    R = ||r||^2,  k = N - 2,  det(C^T C) = N sum (x - xbar)^2
    log p(y | x) = lgamma(k/2) - log 2 - (k/2) log pi - (k/2) log R - (1/2) log det(C^T C)

(``exact=True``, the default). ``exact=False`` returns the reference implementation's
-(N/2) log R = -N log ||r||, which drops the terms that depend on the model image through
det(C^T C) and uses N in place of N - 2.

Coloured noise: both images are whitened, y_w = F^-1[F(y) / sqrt(PSD)], and the white or marginal
likelihood is applied to (x_w, y_w); see :mod:`cryoensemble.inference._noise_model`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammaln
from jaxtyping import Array, Float

__all__ = [
    "log_likelihood_colored",
    "log_likelihood_marginal",
    "log_likelihood_white",
    "marginal_from_residual",
    "whiten",
]


def _mask_like(image: Array, mask) -> Array:
    if mask is None:
        return jnp.ones_like(image)
    return jnp.broadcast_to(jnp.asarray(mask, image.dtype), image.shape)


def log_likelihood_white(
    model_image: Float[Array, "n n"],
    image: Float[Array, "n n"],
    sigma: float | Float[Array, ""],
    mask=None,
) -> Float[Array, ""]:
    """log N(y | x, sigma^2 I) over the pixels inside ``mask`` (all pixels if None)."""
    m = _mask_like(image, mask)
    sigma = jnp.asarray(sigma, image.dtype)
    n_pix = jnp.sum(m)
    chi2 = jnp.sum(m * (image - model_image) ** 2)
    return -0.5 * chi2 / sigma**2 - 0.5 * n_pix * jnp.log(2 * jnp.pi * sigma**2)


def marginal_from_residual(rss: Array, n_pix: Array, det: Array, exact: bool = True) -> Array:
    """The marginal log-likelihood from the residual sum of squares, N and det(C^T C)."""
    rss = jnp.maximum(rss, jnp.finfo(rss.dtype).tiny)
    if not exact:
        return -0.5 * n_pix * jnp.log(rss)
    k = n_pix - 2.0
    det = jnp.maximum(det, jnp.finfo(det.dtype).tiny)
    return (
        gammaln(0.5 * k)
        - jnp.log(2.0)
        - 0.5 * k * jnp.log(jnp.pi)
        - 0.5 * k * jnp.log(rss)
        - 0.5 * jnp.log(det)
    )


def _fit_residual(x: Array, y: Array, m: Array):
    """Least-squares fit y ~ s x + b inside the mask: (rss, N, det(C^T C), s, b)."""
    n_pix = jnp.sum(m)
    xbar = jnp.sum(m * x) / n_pix
    ybar = jnp.sum(m * y) / n_pix
    xc = m * (x - xbar)
    yc = m * (y - ybar)
    vxx = jnp.sum(xc * xc)
    vxy = jnp.sum(xc * yc)
    safe = vxx > 0
    s = jnp.where(safe, vxy / jnp.where(safe, vxx, 1.0), 0.0)
    r = yc - s * xc
    rss = jnp.sum(r * r)
    return rss, n_pix, n_pix * vxx, s, ybar - s * xbar


def log_likelihood_marginal(
    model_image: Float[Array, "n n"],
    image: Float[Array, "n n"],
    mask=None,
    exact: bool = True,
) -> Float[Array, ""]:
    """Scale and offset fitted by least squares, noise variance marginalised (Jeffreys prior).

    ``exact`` (static) selects the full formula of the module docstring (True) or the reference
    implementation's -(N/2) log ||r||^2 (False). Changing the intensities of ``image`` by
    y -> a y + c adds -(N - 2) log|a| (or -N log|a|) to every structure alike.
    """
    m = _mask_like(image, mask)
    rss, n_pix, det, _, _ = _fit_residual(model_image, image, m)
    return marginal_from_residual(rss, n_pix, det, exact)


def whiten(image: Float[Array, "n n"], psd: Float[Array, "n n//2+1"]) -> Float[Array, "n n"]:
    """F^-1[F(image) / sqrt(PSD)] with the PSD on the rfft2 grid (see ``noise_model``)."""
    n = image.shape[-1]
    ft = jnp.fft.rfft2(image) * jnp.asarray(1.0 / jnp.sqrt(psd), image.dtype)
    return jnp.fft.irfft2(ft, s=(n, n)).astype(image.dtype)


def log_likelihood_colored(
    model_image: Float[Array, "n n"],
    image: Float[Array, "n n"],
    psd: Float[Array, "n n//2+1"],
    mask=None,
    marginal: bool = True,
    exact: bool = True,
) -> Float[Array, ""]:
    """Whiten both images with the noise PSD, then the marginal (default) or white (sigma = 1)
    likelihood. With ``marginal=False`` the PSD must be in absolute units (image units^2)."""
    xw = whiten(model_image, psd)
    yw = whiten(image, psd)
    if marginal:
        return log_likelihood_marginal(xw, yw, mask, exact)
    return log_likelihood_white(xw, yw, 1.0, mask)
