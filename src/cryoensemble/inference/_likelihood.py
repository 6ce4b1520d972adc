"""Log-likelihoods marginalised over a per-particle affine intensity (pure JAX).

Notation: y the observed image, x the model image (the pipeline's noiseless image of a structure at
the particle's pose and CTF), m a binary mask (all ones if none), N = sum(m) the number of pixels
used, and sums run over the pixels inside the mask. Formula (see ``docs/likelihood.md``):

Marginal (scale s and offset b with flat priors, sigma with the Jeffreys prior 1/sigma)::

    y = s x + b + noise,  C = [x, 1] (N x 2),  r = y - C beta_hat (least-squares residual),
    R = ||r||^2,  k = N - 2,  det(C^T C) = N sum (x - xbar)^2
    log p(y | x) = lgamma(k/2) - log 2 - (k/2) log pi - (k/2) log R - (1/2) log det(C^T C)

(``exact=True``, the default). ``exact=False`` returns the reference implementation's
-(N/2) log R = -N log ||r||, which drops the terms that depend on the model image through
det(C^T C) and uses N in place of N - 2.

The likelihoods with a known noise level are the noise models' own
(:meth:`cryoensemble.noise.AbstractNoiseModel.log_likelihood`); coloured noise is handled by
whitening both images with the noise model (:meth:`cryoensemble.noise.ColoredGaussianNoise.whiten`)
before the marginal or the unit-variance white likelihood.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammaln
from jaxtyping import Array, ArrayLike, Float, Shaped

from cryoensemble.noise import ColoredGaussianNoise

__all__ = [
    "centre_in_mask",
    "log_likelihood_colored",
    "log_likelihood_marginal",
    "marginal_from_centred",
    "marginal_from_residual",
]


def marginal_from_residual(
    rss: Float[ArrayLike, "*b"],
    n_pix: Float[ArrayLike, "*#b"],
    det: Float[ArrayLike, "*#b"],
    exact: bool = True,
) -> Float[Array, "*b"]:
    """The marginal log-likelihood from the least-squares fit's summary statistics.

    Arguments:
        rss: residual sum of squares R (image units squared).
        n_pix: N, the number of pixels used.
        det: det(C^T C) = N sum (x - xbar)^2.
        exact: the full formula (True) or -(N/2) log R (False); static.
    """
    rss, n_pix = jnp.asarray(rss), jnp.asarray(n_pix)
    rss = jnp.maximum(rss, jnp.finfo(rss.dtype).tiny)
    if not exact:
        return -0.5 * n_pix * jnp.log(rss)
    k = n_pix - 2.0
    det = jnp.asarray(det)
    det = jnp.maximum(det, jnp.finfo(det.dtype).tiny)
    return (
        gammaln(0.5 * k)
        - jnp.log(2.0)
        - 0.5 * k * jnp.log(jnp.pi)
        - 0.5 * k * jnp.log(rss)
        - 0.5 * jnp.log(det)
    )


def centre_in_mask(
    image: Float[ArrayLike, "h w"], mask: Float[ArrayLike, "h w"]
) -> tuple[Float[Array, "h w"], Float[Array, ""]]:
    """The image minus its mean inside ``mask``, times the mask, and N = sum(mask).

    Arguments:
        image: (n, n) image.
        mask: (n, n) 0/1 weights.
    """
    image, mask = jnp.asarray(image), jnp.asarray(mask)
    n_pix = jnp.sum(mask)
    mean = jnp.sum(mask * image) / n_pix
    return mask * (image - mean), n_pix


def marginal_from_centred(
    xc: Float[ArrayLike, "h w"],
    yc: Float[ArrayLike, "h w"],
    n_pix: Float[ArrayLike, ""],
    exact: bool = True,
) -> Float[Array, ""]:
    """The marginal log-likelihood of y given x, from both images centred in the mask.

    Fits y ~ s x + b by least squares and calls :func:`marginal_from_residual`; a constant model
    image gets s = 0. The data term ``yc`` can be computed once per particle
    (:func:`centre_in_mask`) and reused for every model image.

    Arguments:
        xc: (n, n) model image, centred and masked.
        yc: (n, n) observed image, centred and masked.
        n_pix: N, the number of pixels in the mask.
        exact: the full formula (True) or -(N/2) log R (False); static.
    """
    xc, yc = jnp.asarray(xc), jnp.asarray(yc)
    vxx = jnp.sum(xc * xc)
    vxy = jnp.sum(xc * yc)
    safe = vxx > 0
    s = jnp.where(safe, vxy / jnp.where(safe, vxx, 1.0), 0.0)
    r = yc - s * xc
    return marginal_from_residual(jnp.sum(r * r), n_pix, n_pix * vxx, exact)


def log_likelihood_marginal(
    model_image: Float[ArrayLike, "h w"],
    image: Float[ArrayLike, "h w"],
    mask: Shaped[ArrayLike, "h w"] | None = None,
    exact: bool = True,
) -> Float[Array, ""]:
    """Scale and offset fitted by least squares, noise variance marginalised (Jeffreys prior).

    Changing the intensities of ``image`` by y -> a y + c adds -(N - 2) log|a| (or -N log|a|) to
    every structure alike.

    Arguments:
        model_image: (n, n) noiseless model image x.
        image: (n, n) observed image y.
        mask: (n, n) 0/1 weights; None: all pixels.
        exact: the full formula of the module docstring (True) or the reference
            implementation's -(N/2) log ||r||^2 (False); static.
    """
    image = jnp.asarray(image)
    m = jnp.ones_like(image) if mask is None else jnp.asarray(mask, image.dtype)
    xc, n_pix = centre_in_mask(jnp.asarray(model_image, image.dtype), m)
    yc, _ = centre_in_mask(image, m)
    return marginal_from_centred(xc, yc, n_pix, exact)


def log_likelihood_colored(
    model_image: Float[ArrayLike, "h w"],
    image: Float[ArrayLike, "h w"],
    psd: Float[ArrayLike, "h k"],
    mask: Shaped[ArrayLike, "h w"] | None = None,
    marginal: bool = True,
    exact: bool = True,
) -> Float[Array, ""]:
    """Whiten both images with the noise PSD, then the marginal (default) or the white
    unit-variance likelihood (:meth:`~cryoensemble.noise.ColoredGaussianNoise.log_likelihood`).

    Arguments:
        model_image: (n, n) noiseless model image x.
        image: (n, n) observed image y.
        psd: (n, n // 2 + 1) noise power spectrum; in absolute units (image units^2) when
            ``marginal`` is False, any scale otherwise.
        mask: (n, n) 0/1 weights applied after whitening; None: all pixels.
        marginal: marginalise the scale, offset and noise level (True) or not (False).
        exact: see :func:`log_likelihood_marginal`.
    """
    noise = ColoredGaussianNoise(jnp.asarray(psd))
    if marginal:
        return log_likelihood_marginal(noise.whiten(model_image), noise.whiten(image), mask, exact)
    return noise.log_likelihood(image, model_image, mask)
