"""The JAX kernels of the pose search: shift windows, per-particle Fourier data, the FFT scoring
of every shift at once, central slices at each level's sampling, and the coarse-to-fine search
of one batch of particles. See :mod:`cryoensemble.posesearch` and ``docs/pose_search.md``.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from cryoensemble.errors import InputError
from cryoensemble.inference import marginal_from_residual
from cryoensemble.ndimage import fourier_crop, frequency_grid
from cryoensemble.optics import CTFParams, ctf, padded_size
from cryoensemble.pose import cell_children, cell_rotations, n_rotations
from cryoensemble.posesearch._config import PoseSearchConfig
from cryoensemble.projection import MapProjector, map_slice

__all__ = ["shift_window"]


# -- shifts ------------------------------------------------------------------------------------
class _Window(eqx.Module):
    flat: jax.Array  # (S,) int32 index into the G x G correlation map
    t: jax.Array  # (S, 2) float32 translation (x, y) in pixels
    log_prior: jax.Array  # (S,)
    neighbours: jax.Array  # (S, 4) int32: -x, +x, -y, +y (itself where outside)


def shift_window(
    max_shift_px: float, grid: int, shift_sigma_px: float | None = None
) -> dict[str, np.ndarray]:
    """The translations searched: integer (tx, ty) with tx^2 + ty^2 <= max_shift_px^2.

    Arguments:
        max_shift_px: radius of the disc, in pixels.
        grid: side (pixels) of the circular correlation map the translations index.
        shift_sigma_px: standard deviation (pixels) of a Gaussian prior (None: uniform).

    Returns:
        ``flat`` (S,) int32 indices into the ``grid`` x ``grid`` map, ``t`` (S, 2) float32
        translations (x, y) in pixels, ``log_prior`` (S,) float32 (normalised over the disc) and
        ``neighbours`` (S, 4) int32, the window index of the -x, +x, -y, +y neighbours (itself
        where outside).
    """
    r = int(math.floor(max_shift_px + 1e-9))
    if 2 * r + 1 > grid:
        raise InputError(f"max shift {max_shift_px:g} pixels does not fit a {grid}-pixel grid")
    ty, tx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = tx**2 + ty**2 <= max_shift_px**2 + 1e-9
    tx, ty = tx[keep], ty[keep]
    if shift_sigma_px is None:
        logp = np.full(tx.shape, -math.log(tx.size))
    else:
        e = -(tx**2 + ty**2) / (2.0 * shift_sigma_px**2)
        logp = e - np.log(np.sum(np.exp(e - e.max()))) - e.max()
    where = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(tx, ty, strict=True))}
    nbr = np.empty((tx.size, 4), np.int32)
    for i, (a, b) in enumerate(zip(tx, ty, strict=True)):
        for j, (da, db) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
            nbr[i, j] = where.get((int(a) + da, int(b) + db), i)
    flat = (ty % grid) * grid + (tx % grid)
    return {
        "flat": flat.astype(np.int32),
        "t": np.stack([tx, ty], -1).astype(np.float32),
        "log_prior": logp.astype(np.float32),
        "neighbours": nbr,
    }


# -- per-particle data and the scoring kernel ----------------------------------------------------
class _Particles(eqx.Module):
    yft: jax.Array  # (P, G, G//2+1) DFT of the centred, zero-padded image (centre at index 0)
    ctf: jax.Array  # (P, G, G//2+1) CTF on the template grid
    ybar: jax.Array  # (P,)
    syy: jax.Array  # (P,) sum (y - ybar)^2
    syy_raw: jax.Array  # (P,) sum y^2


def _prepare_particles(
    images: Float[Array, "p n n"], params: CTFParams, n: int, grid: int, v: float, apply_ctf: bool
) -> _Particles:
    images = jnp.asarray(images, jnp.float32)
    p = images.shape[0]
    ybar = jnp.mean(images, axis=(-2, -1))
    yc = images - ybar[:, None, None]
    o = grid // 2 - n // 2
    padded = jnp.zeros((p, grid, grid), jnp.float32).at[:, o : o + n, o : o + n].set(yc)
    yft = jnp.fft.rfft2(jnp.fft.ifftshift(padded, axes=(-2, -1)))
    if apply_ctf:
        kx, ky = frequency_grid(grid, v)
        params = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (p,)), params)
        c = jax.vmap(lambda cp: ctf(cp, kx, ky))(params).astype(jnp.float32)
    else:
        c = jnp.ones((p, grid, grid // 2 + 1), jnp.float32)
    return _Particles(
        yft=yft,
        ctf=c,
        ybar=ybar,
        syy=jnp.sum(yc * yc, axis=(-2, -1)),
        syy_raw=jnp.sum(images * images, axis=(-2, -1)),
    )


def _template_stats(x_ft, n: int, grid: int, v: float):
    """Sum and sum of squares over the n x n box of the templates (R, G, G//2+1) at t = 0.

    Computed in real space, from the image the pipeline forms (irfft2 drops the non-Hermitian
    part of the slice on the Nyquist lines, so Parseval on the slice would not match it)."""
    o = grid // 2 - n // 2
    real = jnp.fft.fftshift(jnp.fft.irfft2(x_ft, s=(grid, grid)), axes=(-2, -1))
    crop = v * real[:, o : o + n, o : o + n]
    return jnp.sum(crop, axis=(-2, -1)), jnp.sum(crop * crop, axis=(-2, -1))


def _parabola(minus, centre, plus):
    denom = minus - 2.0 * centre + plus
    ok = denom < 0
    d = jnp.where(ok, 0.5 * (minus - plus) / jnp.where(ok, denom, -1.0), 0.0)
    return jnp.clip(d, -0.5, 0.5)


def _phase_ramp(d, grid: int):
    """(D, G, G//2+1) Fourier factors translating an image by d (D, 2) pixels (x, y)."""
    ky = jnp.fft.fftfreq(grid).astype(jnp.float32)[:, None]
    kx = jnp.fft.rfftfreq(grid).astype(jnp.float32)[None, :]
    d = jnp.asarray(d, jnp.float32)
    return jnp.exp(-2j * jnp.pi * (kx[None] * d[:, 0, None, None] + ky[None] * d[:, 1, None, None]))


def _score_all(
    templates, part: _Particles, win: _Window, cfg: PoseSearchConfig, n, grid, v, offsets=None
):
    """Scores (R, D * S) of one particle against templates (R, G, G//2+1) at every window shift
    (plus each of the D sub-pixel ``offsets`` (D, 2) in pixels; default one plane, no offset)."""
    x_ft = templates * part.ctf[None]
    sx, sxx = _template_stats(x_ft, n, grid, v)  # a phase ramp changes neither
    if offsets is not None:
        ramp = _phase_ramp(offsets, grid)
        x_ft = (x_ft[:, None] * ramp[None]).reshape((-1,) + x_ft.shape[1:])
    corr = jnp.fft.irfft2(part.yft[None] * jnp.conj(x_ft), s=(grid, grid))
    r = templates.shape[0]
    c = v * corr.reshape(r, -1, grid * grid)[:, :, win.flat].reshape(r, -1)  # (R, D * S)
    n_pix = jnp.float32(n * n)
    if cfg.kind == "marginal":
        sxxc = sxx - sx * sx / n_pix
        ok = sxxc > 0
        safe = jnp.where(ok, sxxc, 1.0)
        rss = part.syy - jnp.where(ok[:, None], c * c / safe[:, None], 0.0)
        return marginal_from_residual(rss, n_pix, (n_pix * sxxc)[:, None], cfg.exact)
    s2 = jnp.float32(cfg.sigma) ** 2
    chi2 = part.syy_raw - 2.0 * (c + part.ybar * sx[:, None]) + sxx[:, None]
    return -0.5 * chi2 / s2 - 0.5 * n_pix * jnp.log(2 * jnp.pi * s2)


#: Sub-pixel offsets of the refinement levels: the centres of the 4 quarter cells of a pixel.
_QUARTERS = np.array([[-0.25, -0.25], [0.25, -0.25], [-0.25, 0.25], [0.25, 0.25]], np.float32)


def _expand_window(win: _Window, offsets) -> _Window:
    """The window of D x S translations t + offset_d (prior split equally over the offsets)."""
    d = len(offsets)
    s = win.flat.shape[0]
    t = (jnp.asarray(offsets)[:, None, :] + win.t[None]).reshape(d * s, 2)
    nbr = (win.neighbours[None] + (jnp.arange(d) * s)[:, None, None]).reshape(d * s, 4)
    logp = jnp.tile(win.log_prior, d) - math.log(d)
    return _Window(jnp.tile(win.flat, d), t, logp, nbr.astype(jnp.int32))


def _reduce(scores, win: _Window, v: float):
    """Shift-marginalised log-likelihood (R,), best score (R,) and its shift (R, 2) in A
    (rlnOriginX/YAngst = -t v)."""
    lp = scores + win.log_prior[None]
    lse = jax.nn.logsumexp(lp, axis=1)
    ib = jnp.argmax(lp, axis=1)
    take = lambda idx: jnp.take_along_axis(scores, idx[:, None], axis=1)[:, 0]
    best = take(ib)
    nb = win.neighbours[ib]  # (R, 4)
    inside = jnp.all(nb != ib[:, None], axis=1)  # all 4 neighbours in the window
    dx = jnp.where(inside, _parabola(take(nb[:, 0]), best, take(nb[:, 1])), 0.0)
    dy = jnp.where(inside, _parabola(take(nb[:, 2]), best, take(nb[:, 3])), 0.0)
    t = win.t[ib] + jnp.stack([dx, dy], -1)
    return lse, best, -t * v


def _score_particle(templates, part, win, cfg, n, grid, v, offsets=None):
    scores = _score_all(templates, part, win, cfg, n, grid, v, offsets)
    return _reduce(scores, win if offsets is None else _expand_window(win, offsets), v)


def _slices(projector: MapProjector, rotations, grid: int, scale: float = 1.0):
    """Central slices (R, grid, grid//2+1) of the rotations on a grid of pixels 1/scale voxels.

    :func:`~cryoensemble.projection.map_slice` of every rotation. With scale < 1 (a level searched
    on Fourier-cropped images of pixel v / scale) the slice samples the same 3-D transform at the
    frequencies of the coarser grid, times scale^3: scale^2 makes its inverse DFT the samples of
    the band-limited projection (a DFT is a sum over pixels), and one more scale keeps
    ``v * template`` (``v`` the coarse pixel) a line integral in V A, as on the full grid.
    """
    out = jax.vmap(lambda r: map_slice(projector, r, grid, scale))(rotations)
    if scale == 1.0:
        return out
    # fourier_crop gives the coarse grid's Nyquist row the mean of the +grid/2 and -grid/2 rows
    # of the fine grid; the slice samples -grid/2 only, so add the +grid/2 row: the slice of the
    # rotation with its second row negated samples (kx, -ky).
    h = grid // 2
    flip = jnp.asarray([1.0, -1.0, 1.0], rotations.dtype)[:, None]
    plus = jax.vmap(lambda r: map_slice(projector, flip * r, grid, scale)[h])(rotations)
    out = out.at[:, h].set(0.5 * (out[:, h] + plus))
    return out * jnp.asarray(scale**3, out.real.dtype)


@dataclasses.dataclass(frozen=True)
class _Geom:
    """One level's sampling: image box n (pixels), template grid, pixel v (A), scale = n / N."""

    n: int
    grid: int
    v: float
    scale: float


# -- the search for one batch of particles ----------------------------------------------------
def _level_config(cfg: PoseSearchConfig, g: _Geom) -> PoseSearchConfig:
    """The white-noise sigma of Fourier-cropped images is sigma * b / N (fewer, larger pixels)."""
    if cfg.sigma is None or g.scale == 1.0:
        return cfg
    return dataclasses.replace(cfg, sigma=cfg.sigma * g.scale)


def _global_level(projector, parts, rotations, win, cfg, g: _Geom, chunk):
    n_rot = rotations.shape[0]
    n_chunks = -(-n_rot // chunk)
    pad = n_chunks * chunk - n_rot
    rots = jnp.concatenate([rotations, jnp.repeat(rotations[-1:], pad, 0)]) if pad else rotations
    rots = rots.reshape(n_chunks, chunk, 3, 3)
    lc = _level_config(cfg, g)

    def step(rc):
        templates = _slices(projector, rc, g.grid, g.scale)
        return jax.vmap(lambda p: _score_particle(templates, p, win, lc, g.n, g.grid, g.v))(parts)

    lse, best, shift = lax.map(step, rots)  # (n_chunks, P, chunk, ...)
    p = lse.shape[1]
    fix = lambda a: jnp.moveaxis(a, 0, 1).reshape((p, n_chunks * chunk) + a.shape[3:])[:, :n_rot]
    return fix(lse), fix(best), fix(shift)


def _local_level(projector, parts, rotations, win, cfg, g: _Geom):
    offsets = _QUARTERS if cfg.subpixel else None
    lc = _level_config(cfg, g)

    def one(args):
        part, rots = args
        templates = _slices(projector, rots, g.grid, g.scale)
        return _score_particle(templates, part, win, lc, g.n, g.grid, g.v, offsets)

    local = 1 if jax.default_backend() == "cpu" else 8
    return lax.map(one, (parts, rotations), batch_size=min(local, rotations.shape[0]))


@eqx.filter_jit
def _search_batch(projector, images, params, base, wins, cfg, geoms, chunk):
    """Coarse-to-fine search of one batch. Level i is scored on the images Fourier-cropped to
    geoms[i].n; the pose-marginalised likelihood sums only the leaves scored at the final
    level's sampling (the unrefined cells of coarser-sampled levels are left out: their scores
    are likelihoods of other data), and the best pose is the best at that sampling."""
    p = images.shape[0]
    prepared = {}

    def particles_at(g: _Geom):
        if (g.n, g.grid) not in prepared:
            cropped = fourier_crop(images, g.n)
            prepared[(g.n, g.grid)] = _prepare_particles(
                cropped, params, g.n, g.grid, g.v, cfg.apply_ctf
            )
        return prepared[(g.n, g.grid)]

    base_pix, base_q, base_rot = base
    g0 = geoms[0]
    lse, best, shift = _global_level(projector, particles_at(g0), base_rot, wins[0], cfg, g0, chunk)
    rows = jnp.arange(p)
    ib = jnp.argmax(best, axis=1)
    best_score, best_rot, best_shift = best[rows, ib], base_rot[ib], shift[rows, ib]
    pix = jnp.broadcast_to(base_pix, (p, base_pix.size))
    q = jnp.broadcast_to(base_q, (p, base_q.size))
    level = cfg.base_level
    terms = []
    for i in range(1, cfg.n_refine + 1):
        k = min(cfg.n_candidates, lse.shape[1])
        _, sel = lax.top_k(lse, k)
        if geoms[i - 1] == geoms[-1]:
            chosen = jnp.zeros(lse.shape, bool).at[rows[:, None], sel].set(True)
            rest = jax.nn.logsumexp(jnp.where(chosen, -jnp.inf, lse), axis=1)
            terms.append(rest - math.log(n_rotations(level)))
        sp = jnp.take_along_axis(pix, sel, axis=1)
        sq = jnp.take_along_axis(q, sel, axis=1)
        cp, cq = cell_children(sp, sq)
        level += 1
        pix, q = cp.reshape(p, -1), cq.reshape(p, -1)
        rots = cell_rotations(level, pix, q)  # (P, 8k, 3, 3)
        g = geoms[i]
        lse, best, shift = _local_level(projector, particles_at(g), rots, wins[i], cfg, g)
        ib = jnp.argmax(best, axis=1)
        # scores at another sampling are not comparable: a new sampling starts afresh
        better = best[rows, ib] > best_score if g == geoms[i - 1] else jnp.ones(p, bool)
        best_score = jnp.where(better, best[rows, ib], best_score)
        best_rot = jnp.where(better[:, None, None], rots[rows, ib], best_rot)
        best_shift = jnp.where(better[:, None], shift[rows, ib], best_shift)
    terms.append(jax.nn.logsumexp(lse, axis=1) - math.log(n_rotations(level)))
    log_z = jax.nn.logsumexp(jnp.stack(terms), axis=0)
    return best_rot, best_shift, best_score, log_z


@eqx.filter_jit
def _score_rotations_jit(projector, images, params, rotations, win, cfg, n, grid, v):
    parts = _prepare_particles(images, params, n, grid, v, cfg.apply_ctf)
    templates = _slices(projector, rotations, grid)
    return jax.vmap(lambda part: _score_all(templates, part, win, cfg, n, grid, v))(parts)


def _window(cfg: PoseSearchConfig, max_shift: float, grid: int, v: float) -> _Window:
    sigma = None if cfg.shift_sigma is None else cfg.shift_sigma / v
    w = shift_window(max_shift / v, grid, sigma)
    return _Window(
        jnp.asarray(w["flat"]),
        jnp.asarray(w["t"]),
        jnp.asarray(w["log_prior"]),
        jnp.asarray(w["neighbours"]),
    )


def _geometry(cfg: PoseSearchConfig, n: int, v: float):
    """Full-resolution template grid, shift window and max shift (A)."""
    grid = padded_size(n, cfg.pad_factor)
    max_shift = 0.1 * n * v if cfg.max_shift is None else cfg.max_shift
    return grid, _window(cfg, max_shift, grid, v), max_shift


def _plan(cfg: PoseSearchConfig, n: int, v: float):
    """Per level: the sampling (:class:`_Geom`) and the shift window (in its pixels).

    Levels on a box smaller than the final one use pad factor 1 (their Fourier-cropped data are
    band-limited; they only rank candidates); the final box uses ``cfg.pad_factor``."""
    max_shift = 0.1 * n * v if cfg.max_shift is None else cfg.max_shift
    boxes = cfg.level_boxes(n, v)
    geoms, wins = [], []
    for b in boxes:
        vb = v * n / b
        grid = padded_size(b, cfg.pad_factor if b == boxes[-1] else 1.0)
        geoms.append(_Geom(int(b), int(grid), float(vb), b / n))
        wins.append(_window(cfg, max_shift, grid, vb))
    return tuple(geoms), tuple(wins), max_shift
