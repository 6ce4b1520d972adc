"""Projection of Gaussian atoms, integrated exactly over each pixel.

The projection of an isotropic 3-D Gaussian along z is an isotropic 2-D Gaussian, which is separable:
its integral over the pixel [x0, x1] x [y0, y1] is A * Ix * Iy with
Ix = (erf((x1 - x) / (sqrt(2) sigma)) - erf((x0 - x) / (sqrt(2) sigma))) / 2. Each atom is evaluated on a
(2h + 1) x (2h + 1) window of pixels around it and scatter-added into the image, so the cost and the
memory are O(atoms * window), never O(atoms * pixels).

Image convention: pixel (i, j) = (row y, column x) has its centre at
((j - n // 2) * pixel_size, (i - n // 2) * pixel_size) Angstrom. The atom at ``r`` (model frame,
Angstrom) lands at ``R @ r`` (RELION's rotation matrix), projected along z, then moves by
``-shift``: the shift is RELION's (rlnOriginXAngst, rlnOriginYAngst), which re-centres the particle. The image holds the
pixel average of the projected potential, in V A.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import erf
from jaxtyping import Array, ArrayLike, Float
from scipy import special

from cryoensemble.scattering import GaussianAtoms

#: Tolerance on the fraction of an atom's projected mass that falls outside its window. The image's
#: relative L2 error is a fraction of it (tested below 1e-3 at 0.5-2 A pixels).
DEFAULT_TRUNCATION_TOLERANCE = 1e-3


def truncated_mass_fraction(atoms: GaussianAtoms, radius: float) -> float:
    """The largest fraction of any atom's projected mass lying beyond ``radius`` along x or y.

    Arguments:
        atoms: the Gaussian atoms.
        radius: distance from the atom in Angstrom.
    """
    amp = np.abs(np.asarray(atoms.amplitudes, np.float64))
    sigma = np.sqrt(np.asarray(atoms.variances, np.float64))
    tail = special.erfc(radius / (np.sqrt(2.0) * sigma))  # both sides of one axis
    frac = 2.0 * (amp * tail).sum(axis=1) / np.maximum(amp.sum(axis=1), 1e-30)
    return float(frac.max()) if frac.size else 0.0


def default_half_width(
    atoms: GaussianAtoms, pixel_size: float, tolerance: float = DEFAULT_TRUNCATION_TOLERANCE
) -> int:
    """The smallest window half-width h (pixels) that loses under ``tolerance`` of any atom's mass.

    The window spans pixels ic - h .. ic + h around the pixel ic nearest to the atom, so every
    excluded pixel is at least h * pixel_size from the atom.

    Arguments:
        atoms: the Gaussian atoms.
        pixel_size: Angstrom.
        tolerance: the largest fraction of an atom's projected mass allowed outside the window.
    """
    h = 1
    while truncated_mass_fraction(atoms, h * pixel_size) > tolerance and h < 64:
        h += 1
    return h


def _window_edges(coord: Array, n: int, half_width: int, pixel_size: float):
    """First window pixel (a,) and the distances (w+1, a) in Angstrom from atoms to window edges.

    ``coord`` (a,) is the atom's image coordinate in Angstrom relative to the centre pixel n // 2.
    The window spans pixels ic - h .. ic + h around the nearest pixel ic.
    """
    c = n // 2
    first = jnp.floor(coord / pixel_size + 0.5) + (c - half_width)
    steps = jnp.arange(2 * half_width + 2, dtype=coord.dtype)
    edges = (first[None, :] - c - 0.5 + steps[:, None]) * pixel_size - coord[None, :]
    return first.astype(jnp.int32), edges


def _image_coords(positions, rotation, shift):
    """Image-plane coordinates (2, a) in Angstrom: rows 0 and 1 of A r, minus the shift."""
    return rotation[:2] @ positions.T - shift[:, None]


def _profiles(edges: Array, inv_width: Array):
    """erf at the edges (k, w+1, a) and its differences (k, w, a): twice the pixel integrals."""
    cdf = erf(edges[None] * inv_width[:, None, :])
    return cdf, cdf[:, 1:] - cdf[:, :-1]


def _starts(y0, x0, n, w):
    # Windows sticking out of the image land in a canvas padding of w (starts clipped), cropped later.
    return jnp.clip(jnp.stack([y0, x0], axis=-1) + w, 0, n + w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _project(xy, amplitudes, variances, n, pixel_size, half_width):
    """Image of atoms at image-plane coordinates ``xy`` (2, a) Angstrom (see project_atoms)."""
    inv_width = lax.rsqrt(2.0 * variances.T)  # (k, a), 1 / (sqrt(2) sigma)
    weights = amplitudes.T / (4.0 * pixel_size**2)  # profiles are twice the integrals
    x0, ex = _window_edges(xy[0], n, half_width, pixel_size)
    y0, ey = _window_edges(xy[1], n, half_width, pixel_size)
    _, px = _profiles(ex, inv_width)
    _, py = _profiles(ey, inv_width)
    # patches[u, v, a] = sum_k weights[k, a] py[k, u, a] px[k, v, a], unrolled over k (fused by XLA).
    patches = (weights[0] * py[0])[:, None, :] * px[0][None, :, :]
    for k in range(1, weights.shape[0]):
        patches = patches + (weights[k] * py[k])[:, None, :] * px[k][None, :, :]
    w = 2 * half_width + 1
    canvas = jnp.zeros((n + 2 * w, n + 2 * w), patches.dtype)
    canvas = lax.scatter_add(
        canvas, _starts(y0, x0, n, w), patches, _WINDOW_SCATTER, mode=lax.GatherScatterMode.CLIP
    )
    return canvas[w : w + n, w : w + n]


def _project_fwd(xy, amplitudes, variances, n, pixel_size, half_width):
    image = _project(xy, amplitudes, variances, n, pixel_size, half_width)
    return image, (xy, amplitudes, variances)


def _project_bwd(n, pixel_size, half_width, residuals, g):
    """Analytic adjoint: gather each atom's window of the cotangent and contract the profiles.

    With E = erf(e / (sqrt(2) sigma)) at the window edges e (= edge - atom, Angstrom) and
    D = dE/de = (2 / sqrt(pi)) exp(-(e / (sqrt(2) sigma))^2) / (sqrt(2) sigma): d(profile)/d(atom)
    = -(D[v+1] - D[v]) and d(profile)/d(sigma^2) = -(e D inv^2)[v+1] + (e D inv^2)[v].
    Recomputes the forward quantities (cheap) instead of storing them.
    """
    xy, amplitudes, variances = residuals
    inv_width = lax.rsqrt(2.0 * variances.T)
    weights = amplitudes.T / (4.0 * pixel_size**2)
    x0, ex = _window_edges(xy[0], n, half_width, pixel_size)
    y0, ey = _window_edges(xy[1], n, half_width, pixel_size)
    _, px = _profiles(ex, inv_width)
    _, py = _profiles(ey, inv_width)
    w = 2 * half_width + 1
    padded = jnp.pad(g, w)
    gw = lax.gather(
        padded,
        _starts(y0, x0, n, w),
        _WINDOW_GATHER,
        slice_sizes=(w, w),
        mode=lax.GatherScatterMode.CLIP,
    )  # (w, w, a): gw[u, v, a] = g at the pixel (y0 + u, x0 + v)
    # Everything below is unrolled over the (short) component and window axes and works on (a,)
    # vectors: XLA:CPU's reductions over major axes, and transposes inside loops, are slow.
    t = w + 1
    dens_x, dens_y = _erf_derivative(ex, inv_width), _erf_derivative(ey, inv_width)
    d_x, d_y, d_weights, d_var = 0.0, 0.0, [], []
    for k in range(px.shape[0]):
        # gx[v] = sum_u gw[u, v] py[k, u];  gy[u] = sum_v gw[u, v] px[k, v]
        gx = [sum(gw[u, v] * py[k, u] for u in range(w)) for v in range(w)]
        gy = [sum(gw[u, v] * px[k, v] for v in range(w)) for u in range(w)]
        d_weights.append(sum(gx[v] * px[k, v] for v in range(w)))
        wk = weights[k]
        d_x = d_x - wk * sum(gx[v] * (dens_x[k, v + 1] - dens_x[k, v]) for v in range(w))
        d_y = d_y - wk * sum(gy[u] * (dens_y[k, u + 1] - dens_y[k, u]) for u in range(w))
        ed_x = [ex[j] * dens_x[k, j] for j in range(t)]
        ed_y = [ey[j] * dens_y[k, j] for j in range(t)]
        dv = sum(gx[v] * (ed_x[v + 1] - ed_x[v]) for v in range(w))
        dv = dv + sum(gy[u] * (ed_y[u + 1] - ed_y[u]) for u in range(w))
        d_var.append(-wk * dv * inv_width[k] ** 2)
    d_weights, dvar = jnp.stack(d_weights), jnp.stack(d_var)
    d_amplitudes = (d_weights / (4.0 * pixel_size**2)).T
    return jnp.stack([d_x, d_y]), d_amplitudes, dvar.T


_project.defvjp(_project_fwd, _project_bwd)


def _erf_derivative(edges: Array, inv_width: Array) -> Array:
    """dE/de (k, w+1, a) of E = erf(e inv_width): (2 / sqrt(pi)) inv_width exp(-(e inv_width)^2).

    exp is clipped at 80 (1.8e-35): below it would return denormal floats, ~100x slower on x86
    CPUs, for a contribution that is zero in float32 anyway.
    """
    t2 = jnp.square(edges[None] * inv_width[:, None, :])
    dens = jnp.where(t2 < 80.0, jnp.exp(-jnp.minimum(t2, 80.0)), 0.0)
    return dens * (inv_width[:, None, :] * (2.0 / np.sqrt(np.pi)))


def _sum0(x: Array) -> Array:
    """Sum over the leading (short) axis as unrolled adds: XLA:CPU's reduction over a major axis
    is ~10x slower than this for the (w, ..., atoms) layouts used here."""
    out = x[0]
    for i in range(1, x.shape[0]):
        out = out + x[i]
    return out


def project_atoms(
    atoms: GaussianAtoms,
    rotation: Float[ArrayLike, "3 3"],
    shift: Float[ArrayLike, "2"],
    n: int,
    pixel_size: float,
    half_width: int,
) -> Float[Array, "n n"]:
    """Pixel-averaged projected potential (V A) of ``atoms`` at one pose on an n x n image.

    Differentiable in the positions, amplitudes, variances (B-factors), rotation and shift, with
    an analytic adjoint that costs about as much as the forward pass.

    Arguments:
        atoms: the Gaussian atoms (positions in Angstrom, in the model frame).
        rotation: (3, 3) RELION's matrix A (see :mod:`cryoensemble.pose`).
        shift: (2,) RELION's (rlnOriginXAngst, rlnOriginYAngst) in Angstrom.
        n: image side in pixels (static).
        pixel_size: Angstrom (static).
        half_width: the window half-width in pixels (static; see :func:`default_half_width`).
    """
    dtype = atoms.positions.dtype
    # The affine map to the image plane stays outside the custom adjoint (plain autodiff gives
    # the position, rotation and shift cotangents; inside a scan it is also much faster).
    xy = _image_coords(atoms.positions, jnp.asarray(rotation, dtype), jnp.asarray(shift, dtype))
    return _project(
        xy, atoms.amplitudes, atoms.variances, int(n), float(pixel_size), int(half_width)
    )


_WINDOW_SCATTER = lax.ScatterDimensionNumbers(
    update_window_dims=(0, 1), inserted_window_dims=(), scatter_dims_to_operand_dims=(0, 1)
)
_WINDOW_GATHER = lax.GatherDimensionNumbers(
    offset_dims=(0, 1), collapsed_slice_dims=(), start_index_map=(0, 1)
)
