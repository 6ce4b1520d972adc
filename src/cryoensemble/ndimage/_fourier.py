"""Fourier-space grids, cropping and filters."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.errors import InputError, check_positive


def frequency_grid(
    n: int, pixel_size: float, rfft: bool = True, dtype=jnp.float32
) -> tuple[Float[Array, "n m"], Float[Array, "n m"]]:
    """Spatial frequencies (kx, ky) in 1/Angstrom of an n x n image in FFT order.

    Arguments:
        n: image side in pixels.
        pixel_size: Angstrom per pixel.
        rfft: the ``jnp.fft.rfft2`` layout (n, n // 2 + 1) (default), else (n, n).
        dtype: floating dtype of the grids.

    Returns:
        (kx, ky); ky varies along axis 0 (rows), kx along axis 1 (columns).
    """
    ky = jnp.fft.fftfreq(n, d=pixel_size).astype(dtype)
    kx = (jnp.fft.rfftfreq(n, d=pixel_size) if rfft else jnp.fft.fftfreq(n, d=pixel_size)).astype(
        dtype
    )
    return jnp.broadcast_to(kx[None, :], (n, kx.size)), jnp.broadcast_to(ky[:, None], (n, kx.size))


def frequency_radius(
    n: int, pixel_size: float, rfft: bool = True, dtype=jnp.float32
) -> Float[Array, "n m"]:
    """|k| in 1/Angstrom on the grid of :func:`frequency_grid`.

    Arguments:
        n: image side in pixels.
        pixel_size: Angstrom per pixel.
        rfft: the ``jnp.fft.rfft2`` layout (n, n // 2 + 1) (default), else (n, n).
        dtype: floating dtype of the grid.
    """
    kx, ky = frequency_grid(n, pixel_size, rfft, dtype)
    return jnp.hypot(kx, ky)


def fourier_crop(images: Float[ArrayLike, "*b n n"], size: int) -> Float[Array, "*b size size"]:
    """Images (..., n, n) Fourier-cropped to (..., size, size): the band-limited images sampled on
    pixels n / size times larger.

    Frequencies |k_x|, |k_y| < size / 2 (in Fourier pixels of the n grid) are kept; values are
    kept (a constant image stays constant) and the centre pixel n // 2 maps to size // 2. The
    small grid's Nyquist row and column get the mean of the large grid's +size/2 and -size/2
    lines (rows and columns treated alike; the result is the real part of the cropped complex
    spectrum). White noise of variance s^2 becomes white noise of variance s^2 (size / n)^2,
    except on that Nyquist row and column, which keep half their power.

    Arguments:
        images: (..., n, n) real images.
        size: even output side, 2 <= size <= n.
    """
    images = jnp.asarray(images)
    n = images.shape[-1]
    if size == n:
        return images
    if size % 2 or not 2 <= size <= n:
        raise InputError(f"Fourier crop to {size} pixels: need an even size in [2, {n}]")
    h = size // 2
    ft = jnp.fft.rfft2(jnp.fft.ifftshift(images, axes=(-2, -1)))
    # the Nyquist row: mean of the +h and -h rows, as the inverse real FFT does for the column
    nyquist = 0.5 * (ft[..., h : h + 1, : h + 1] + ft[..., n - h : n - h + 1, : h + 1])
    ft = jnp.concatenate([ft[..., :h, : h + 1], nyquist, ft[..., n - h + 1 :, : h + 1]], axis=-2)
    out = jnp.fft.irfft2(ft * (size / n) ** 2, s=(size, size))
    return jnp.fft.fftshift(out, axes=(-2, -1)).astype(images.dtype)


def lowpass(
    array: Float[ArrayLike, "..."],
    pixel_size: float,
    resolution: float,
    edge_width: float | None = None,
    ndim: int = 2,
) -> Float[Array, "..."]:
    """Low-pass filter to ``resolution`` Angstrom with a raised-cosine edge.

    The filter is 1 below |k| = 1/resolution - w/2, 0 above 1/resolution + w/2 and a raised
    cosine in between.

    Arguments:
        array: images (..., n, n) (``ndim=2``) or maps (..., n, n, n) (``ndim=3``).
        pixel_size: Angstrom per pixel.
        resolution: cut-off in Angstrom.
        edge_width: w in 1/Angstrom, default two Fourier shells, 2 / (n pixel_size).
        ndim: number of trailing axes filtered (2 or 3).
    """
    check_positive("resolution", resolution)
    a = jnp.asarray(array)
    axes = tuple(range(-ndim, 0))
    shape = a.shape[-ndim:]
    n = shape[-1]
    k_c = 1.0 / float(resolution)
    w = 2.0 / (n * pixel_size) if edge_width is None else float(edge_width)
    freqs = [jnp.fft.fftfreq(s, d=pixel_size) for s in shape[:-1]]
    freqs.append(jnp.fft.rfftfreq(n, d=pixel_size))
    grids = jnp.meshgrid(*freqs, indexing="ij")
    k = jnp.sqrt(sum(g**2 for g in grids))
    t = jnp.clip((k - (k_c - w / 2)) / w, 0.0, 1.0)
    filt = (0.5 * (1 + jnp.cos(jnp.pi * t))).astype(a.dtype)
    return jnp.fft.irfftn(jnp.fft.rfftn(a, axes=axes) * filt, s=shape, axes=axes).astype(a.dtype)
