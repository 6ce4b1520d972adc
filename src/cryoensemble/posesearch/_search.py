"""Pose search of particle images against structures or maps, and the pose-marginalised likelihood.

Grid. The rotations come from the Hopf-fibration grid of :mod:`cryoensemble.pose._grids`
(HEALPix directions x uniform psi, equal-volume cells, uniform quadrature weights). The search
starts on the whole grid of ``base_level`` (default 2: 4608 rotations, 15 degrees) and refines
``n_refine`` times (default 2: 7.5 and 3.75 degrees): at each level the ``n_candidates`` cells of
largest shift-marginalised likelihood of every particle are split into their 8 children at the
next level (which partition the parent exactly).

Shifts, all at once by FFT cross-correlation. For one rotation R the model image at the in-plane
translation t (pixels) is x_t = crop(X(. - t)), with X the noiseless projection on the padded grid
G = ``pad_factor`` x box with the particle's CTF applied (as the imaging pipeline forms it: a
Fourier slice of the map, times the CTF, one inverse FFT). With the data image y centred on its
mean (yc, zero-padded to G), c(t) = sum_p yc(p) X(p - t) = irfft2(F[yc] conj(F[X]))(t) gives the
cross term of the likelihood for every integer t with one inverse FFT per (particle, rotation).
The template's slice F[slice](R) is computed once per rotation and shared by all particles; only
the CTF product is per particle. The other terms of the likelihood are the template's sum and
sum of squares inside the box, taken at t = 0 (exact for every t when ``pad_factor`` = 1: the
shift is then circular, exactly as the pipeline's phase ramp; with padding the few fringes that
move across the box edge are neglected). Scores:

* ``marginal`` (default, :func:`cryoensemble.inference.log_likelihood_marginal`, no mask):
  S_xy(t) = c(t), S_xx = sum (x - xbar)^2, R(t) = S_yy - S_xy(t)^2 / S_xx, det = N S_xx;
* ``white`` (:func:`cryoensemble.inference.log_likelihood_white`, known sigma):
  -(sum y^2 - 2 (c(t) + ybar sum x) + sum x^2) / (2 sigma^2) - N/2 log(2 pi sigma^2).

Shift prior: the integer translations inside a disc of radius ``max_shift`` (Angstrom, default 10 %
of the box), uniform (or Gaussian with ``shift_sigma``, normalised over the disc). The best
translation is refined below a pixel by a parabola through the scores of its 4 neighbours.

Pose-marginalised likelihood. log p(y | structure) = log sum_leaves w_cell sum_t p(t)
exp(score(R_cell, t)), the sum over the leaves of the adaptive partition (the coarse cells that
were not refined, with weight 1/N_l of their level, and the finest cells): a midpoint rule on
SO(3) x shifts. :func:`marginal_log_likelihood_matrix` returns it as an (n_particles,
n_structures) matrix that :func:`cryoensemble.inference.fit_weights_em` and
:func:`~cryoensemble.inference.sample_posterior_gibbs` take unchanged.

Frequency marching (``coarse_box``, default 32; ``band_limit``). A rotation step dtheta only
resolves frequencies up to about 1 / (D dtheta) for a particle of diameter D, so the coarse
levels are scored on the images Fourier-cropped to a small box (``coarse_box`` pixels at the base
level, doubled per refinement level; 128 x 128 at 1.2 A: 32 px of 4.8 A at 15 deg, 64 px of
2.4 A at 7.5 deg) with templates sliced on the same coarse frequencies and the CTF evaluated
there, pad factor 1 (the cropped data are band-limited; these levels only rank candidates), and
the likelihood of the cropped images (N = b^2 pixels; white sigma scaled by b / N_box). The last
level uses the full images (or the box of ``band_limit``) and ``pad_factor``. The
pose-marginalised likelihood and the reported best pose are taken at that final sampling only:
the unrefined cells of levels scored at another sampling are left out of the sum (their scores
are likelihoods of other data; for concentrated posteriors their mass is negligible), so
log p(y | structure) is consistent across structures, which is what reweighting needs.

Memory is bounded by chunking: ``rotation_chunk`` rotations x ``particle_batch`` particles
correlation maps (G x G float32) at a time on the global level (``lax.map`` over rotation
chunks), one particle's 8 K children at a time on the refinement levels.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cryoensemble.errors import InputError, check_positive
from cryoensemble.imaging._particles import ArrayParticles
from cryoensemble.inference._likelihood import marginal_from_residual
from cryoensemble.optics._apply import padded_size
from cryoensemble.optics._ctf import CTFParams
from cryoensemble.optics._ctf import ctf as ctf_values
from cryoensemble.pose._euler import matrix_to_euler
from cryoensemble.pose._grids import (
    cell_children,
    cell_rotations,
    hopf_grid,
    n_rotations,
    nominal_resolution,
)
from cryoensemble.projection._maps import MapProjector, _slice, prepare_map_projection, render_map
from cryoensemble.scattering._potential import GaussianAtoms

__all__ = [
    "PoseSearchConfig",
    "PoseSearchResult",
    "angular_errors",
    "error_summary",
    "input_poses_as_truth",
    "marginal_log_likelihood_matrix",
    "plot_angular_distribution",
    "plot_angular_error",
    "poses_table",
    "pose_search",
    "pose_search_arrays",
    "prepare_reference",
    "score_rotations",
    "shift_window",
]

KINDS = ("marginal", "white")


def _even_ceil(x: float) -> int:
    k = int(math.ceil(x - 1e-9))
    return k + (k % 2)


@dataclasses.dataclass(frozen=True)
class PoseSearchConfig:
    """Settings of the pose search (hashable; static under ``jit``).

    base_level: level of the global Hopf grid (0: 72 rotations / 60 deg, 1: 576 / 30, 2: 4608 /
    15, 3: 36864 / 7.5). n_refine: local refinement levels (each halves the spacing).
    n_candidates: cells refined per particle and level. max_shift: radius of the shift search in
    Angstrom (None: 10 % of the box). shift_sigma: standard deviation (Angstrom) of a Gaussian
    shift prior (None: uniform in the disc). kind: "marginal" or "white" (needs ``sigma``, image
    units). exact: the full marginal formula (see ``docs/likelihood.md``). pad_factor: the
    template grid for the CTF (2 as the imaging pipeline; 1 is faster, circular CTF).
    interpolation: Fourier-slice interpolation ("linear" or "cubic"). apply_ctf: multiply the
    templates by each particle's CTF. subpixel: on the refinement levels, split every pixel
    of the shift search into 4 quarter cells (translations t + (+-1/4, +-1/4)).
    coarse_box: frequency marching: the base level is searched on the images and templates
    Fourier-cropped to this box (pixels; pad factor 1), each refinement level doubles it up to
    the final box; the last level is always on the final box (None: every level on the full
    box). band_limit: resolution (Angstrom) of the
    final level, which is searched on the images Fourier-cropped to Nyquist = 1 / band_limit
    (None: the full images). particle_batch, rotation_chunk: memory/speed knobs (None: a
    default for the backend).
    """

    base_level: int = 2
    n_refine: int = 2
    n_candidates: int = 8
    max_shift: float | None = None
    shift_sigma: float | None = None
    kind: str = "marginal"
    sigma: float | None = None
    exact: bool = True
    pad_factor: float = 2.0
    interpolation: str = "linear"
    apply_ctf: bool = True
    subpixel: bool = True
    particle_batch: int | None = None
    rotation_chunk: int | None = None
    coarse_box: int | None = 32
    band_limit: float | None = None

    def __post_init__(self):
        def _int(name, value, lo, hi=None):
            if isinstance(value, bool) or int(value) != value or value < lo:
                raise InputError(f"{name} must be an integer >= {lo}, got {value!r}")
            if hi is not None and value > hi:
                raise InputError(f"{name} must be <= {hi}, got {value!r}")

        _int("base level", self.base_level, 0, 5)
        _int("refinement levels", self.n_refine, 0, 6)
        _int("candidates per level", self.n_candidates, 1)
        if self.base_level + self.n_refine > 8:
            raise InputError(
                f"base level + refinement levels = {self.base_level + self.n_refine} > 8 "
                "(0.23 degrees); choose fewer levels"
            )
        if self.max_shift is not None and not (
            math.isfinite(self.max_shift) and self.max_shift >= 0
        ):
            raise InputError(f"max shift must be >= 0 Angstrom, got {self.max_shift!r}")
        if self.shift_sigma is not None:
            check_positive("shift prior sigma (Angstrom)", self.shift_sigma)
        if self.kind not in KINDS:
            raise InputError(f"pose-search likelihood must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "white":
            if self.sigma is None:
                raise InputError("the white-noise likelihood needs the noise sigma")
            check_positive("noise sigma", self.sigma)
        if not self.pad_factor >= 1:
            raise InputError(f"pad factor must be >= 1, got {self.pad_factor}")
        if self.interpolation not in ("linear", "cubic"):
            raise InputError(
                f"interpolation must be 'linear' or 'cubic', got {self.interpolation!r}"
            )
        if self.coarse_box is not None:
            _int("coarse box", self.coarse_box, 8)
        if self.band_limit is not None:
            check_positive("band limit (Angstrom)", self.band_limit)
        for name in ("particle_batch", "rotation_chunk"):
            value = getattr(self, name)
            if value is not None:
                _int(name.replace("_", " "), value, 1)

    @property
    def final_level(self) -> int:
        return self.base_level + self.n_refine

    @property
    def final_resolution(self) -> float:
        """Nominal spacing (degrees) of the finest level."""
        return nominal_resolution(self.final_level)

    def levels(self) -> list[dict]:
        """Level, rotations in the full grid and nominal spacing of every level searched."""
        return [
            {"level": lv, "n_rotations": n_rotations(lv), "resolution_deg": nominal_resolution(lv)}
            for lv in range(self.base_level, self.final_level + 1)
        ]

    def level_boxes(self, box_size: int, pixel_size: float) -> list[int]:
        """The (Fourier-cropped) image box of every level searched, coarse to fine."""
        n = int(box_size)
        final = n
        if self.band_limit is not None:
            final = min(n, _even_ceil(2.0 * n * pixel_size / self.band_limit))
        out = []
        for i in range(self.n_refine):
            b = final if self.coarse_box is None else min(final, self.coarse_box * 2**i)
            out.append(b - b % 2 if b < final else final)
        return out + [final]  # the last level: the final sampling

    def batch_sizes(self) -> tuple[int, int]:
        cpu = jax.default_backend() == "cpu"
        pb = self.particle_batch or (8 if cpu else 64)
        rc = self.rotation_chunk or (16 if cpu else 64)
        return int(pb), int(rc)


@dataclasses.dataclass
class PoseSearchResult:
    """Best poses and likelihoods, one row per particle and one column per structure.

    rotations (n, M, 3, 3) RELION matrices; euler (n, M, 3) (rot, tilt, psi) degrees; origins
    (n, M, 2) (rlnOriginXAngst, rlnOriginYAngst); log_likelihood (n, M) the score at the best
    pose; marginal_log_likelihood (n, M) the pose-marginalised log-likelihood; indices (n,) the
    0-based particles; best_structure (n,) argmax of the marginal over structures; info: grid and
    timing.
    """

    rotations: np.ndarray
    euler: np.ndarray
    origins: np.ndarray
    log_likelihood: np.ndarray
    marginal_log_likelihood: np.ndarray
    indices: np.ndarray
    info: dict

    @property
    def best_structure(self) -> np.ndarray:
        return np.argmax(self.marginal_log_likelihood, axis=1)

    def best(self) -> dict[str, np.ndarray]:
        """Per particle, the pose for its most likely structure: rotations, euler, origins, ..."""
        k = self.best_structure
        rows = np.arange(len(k))
        return {
            "structure": k,
            "rotations": self.rotations[rows, k],
            "euler": self.euler[rows, k],
            "origins": self.origins[rows, k],
            "log_likelihood": self.log_likelihood[rows, k],
            "marginal_log_likelihood": self.marginal_log_likelihood[rows, k],
        }


# -- references --------------------------------------------------------------------------------
def prepare_reference(
    structure, box_size: int, pixel_size: float, config: PoseSearchConfig | None = None
) -> MapProjector:
    """A :class:`~cryoensemble.projection.MapProjector` for ``structure``.

    ``structure``: :class:`~cryoensemble.scattering.GaussianAtoms` (rendered on a box_size^3 map
    of voxel pixel_size, then prepared), a (box_size,)^3 volume array (voxel = pixel_size), or a
    prepared MapProjector (its box and voxel size must match the particles).
    """
    cfg = config or PoseSearchConfig()
    n = int(box_size)
    v = float(pixel_size)
    if isinstance(structure, MapProjector):
        if structure.box_size != n or abs(structure.voxel_size - v) > 1e-4 * v:
            raise InputError(
                f"the map is {structure.box_size} voxels of {structure.voxel_size:g} A but the "
                f"particles are {n} pixels of {v:g} A"
            )
        return structure
    if isinstance(structure, GaussianAtoms):
        volume = render_map(structure, n, v)
    else:
        volume = jnp.asarray(structure, jnp.float32)
        if volume.shape != (n, n, n):
            raise InputError(
                f"the map has shape {tuple(volume.shape)} but the particles need ({n}, {n}, {n})"
            )
    return prepare_map_projection(volume, v, pad_factor=2.0, interpolation=cfg.interpolation)


# -- shifts ------------------------------------------------------------------------------------
class _Window(eqx.Module):
    flat: jax.Array  # (S,) int32 index into the G x G correlation map
    t: jax.Array  # (S, 2) float32 translation (x, y) in pixels
    log_prior: jax.Array  # (S,)
    neighbours: jax.Array  # (S, 4) int32: -x, +x, -y, +y (itself where outside)


def shift_window(
    max_shift_px: float, grid: int, shift_sigma_px: float | None = None
) -> dict[str, np.ndarray]:
    """Integer translations (tx, ty) with tx^2 + ty^2 <= max_shift_px^2, their log prior
    (uniform, or Gaussian of ``shift_sigma_px``, normalised) and flat indices into a
    ``grid`` x ``grid`` circular correlation map."""
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


def _prepare_particles(images, ctf: CTFParams, n: int, grid: int, v: float, apply_ctf: bool):
    images = jnp.asarray(images, jnp.float32)
    p = images.shape[0]
    ybar = jnp.mean(images, axis=(-2, -1))
    yc = images - ybar[:, None, None]
    o = grid // 2 - n // 2
    padded = jnp.zeros((p, grid, grid), jnp.float32).at[:, o : o + n, o : o + n].set(yc)
    yft = jnp.fft.rfft2(jnp.fft.ifftshift(padded, axes=(-2, -1)))
    if apply_ctf:
        ky = jnp.fft.fftfreq(grid, d=v).astype(jnp.float32)[:, None]
        kx = jnp.fft.rfftfreq(grid, d=v).astype(jnp.float32)[None, :]
        ctf = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (p,)), ctf)
        c = jax.vmap(lambda cp: ctf_values(cp, kx, ky))(ctf).astype(jnp.float32)
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


def _score_all(
    templates, part: _Particles, win: _Window, cfg: PoseSearchConfig, n, grid, v, offsets=None
):
    """Scores (R, D * S) of one particle against templates (R, G, G//2+1) at every window shift
    (plus each of the D sub-pixel ``offsets`` (D, 2) in pixels; default one plane, no offset)."""
    x_ft = templates * part.ctf[None]
    sx, sxx = _template_stats(x_ft, n, grid, v)  # a phase ramp changes neither
    if offsets is not None:
        ky = jnp.fft.fftfreq(grid).astype(jnp.float32)[:, None]
        kx = jnp.fft.rfftfreq(grid).astype(jnp.float32)[None, :]
        d = jnp.asarray(offsets, jnp.float32)
        ramp = jnp.exp(
            -2j * jnp.pi * (kx[None] * d[:, 0, None, None] + ky[None] * d[:, 1, None, None])
        )
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
    """Shift-marginalised log-likelihood (R,), best score (R,) and its origin (R, 2) in A."""
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

    With scale = 1 this is :func:`~cryoensemble.projection._maps.map_slice`. With scale < 1 (a
    level searched on Fourier-cropped images of pixel v / scale) the slice samples the same 3-D
    transform at the frequencies of the coarser grid, times scale^3: scale^2 makes its inverse DFT
    the samples of the band-limited projection (a DFT is a sum over pixels), and one more scale
    keeps ``v * template`` (``v`` the coarse pixel) a line integral in V A, as on the full grid.
    """
    m = projector.padded_size
    dtype = projector.volume_ft.real.dtype
    kx = jnp.fft.rfftfreq(grid).astype(dtype) * scale  # cycles per voxel
    ky = jnp.fft.fftfreq(grid).astype(dtype) * scale
    k2 = jnp.stack(
        [
            jnp.broadcast_to(kx[None, :], (grid, kx.size)),
            jnp.broadcast_to(ky[:, None], (grid, kx.size)),
        ],
        axis=-1,
    ).reshape(-1, 2)

    def one(rotation):
        k3 = k2 @ jnp.asarray(rotation, dtype)[:2, :] * m
        inside = jnp.all(jnp.abs(k3) <= m / 2, axis=-1)
        return jnp.where(inside, _slice(projector, k3), 0).reshape(grid, kx.size)

    out = jax.vmap(one)(rotations)
    return out if scale == 1.0 else out * jnp.asarray(scale**3, dtype)


@dataclasses.dataclass(frozen=True)
class _Geom:
    """One level's sampling: image box n (pixels), template grid, pixel v (A), scale = n / N."""

    n: int
    grid: int
    v: float
    scale: float


def _fourier_crop(images, b: int):
    """Images (P, N, N) Fourier-cropped to (P, b, b): the band-limited images sampled on pixels
    N / b times larger (values kept: a constant image stays constant). Centre N // 2 -> b // 2."""
    n = images.shape[-1]
    if b == n:
        return images
    h = b // 2
    ft = jnp.fft.rfft2(jnp.fft.ifftshift(images, axes=(-2, -1)))
    ft = jnp.concatenate([ft[:, :h, : h + 1], ft[:, n - h :, : h + 1]], axis=1) * (b / n) ** 2
    return jnp.fft.fftshift(jnp.fft.irfft2(ft, s=(b, b)), axes=(-2, -1)).astype(jnp.float32)


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

    lse, best, origin = lax.map(step, rots)  # (n_chunks, P, chunk, ...)
    p = lse.shape[1]
    fix = lambda a: jnp.moveaxis(a, 0, 1).reshape((p, n_chunks * chunk) + a.shape[3:])[:, :n_rot]
    return fix(lse), fix(best), fix(origin)


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
def _search_batch(projector, images, ctf, base, wins, cfg, geoms, chunk):
    """Coarse-to-fine search of one batch. Level i is scored on the images Fourier-cropped to
    geoms[i].n; the pose-marginalised likelihood sums only the leaves scored at the final
    level's sampling (the unrefined cells of coarser-sampled levels are left out: their scores
    are likelihoods of other data), and the best pose is the best at that sampling."""
    p = images.shape[0]
    prepared = {}

    def particles_at(g: _Geom):
        if (g.n, g.grid) not in prepared:
            cropped = _fourier_crop(images, g.n)
            prepared[(g.n, g.grid)] = _prepare_particles(
                cropped, ctf, g.n, g.grid, g.v, cfg.apply_ctf
            )
        return prepared[(g.n, g.grid)]

    base_pix, base_q, base_rot = base
    g0 = geoms[0]
    lse, best, origin = _global_level(
        projector, particles_at(g0), base_rot, wins[0], cfg, g0, chunk
    )
    rows = jnp.arange(p)
    ib = jnp.argmax(best, axis=1)
    best_score, best_rot, best_origin = best[rows, ib], base_rot[ib], origin[rows, ib]
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
        lse, best, origin = _local_level(projector, particles_at(g), rots, wins[i], cfg, g)
        ib = jnp.argmax(best, axis=1)
        # scores at another sampling are not comparable: a new sampling starts afresh
        better = best[rows, ib] > best_score if g == geoms[i - 1] else jnp.ones(p, bool)
        best_score = jnp.where(better, best[rows, ib], best_score)
        best_rot = jnp.where(better[:, None, None], rots[rows, ib], best_rot)
        best_origin = jnp.where(better[:, None], origin[rows, ib], best_origin)
    terms.append(jax.nn.logsumexp(lse, axis=1) - math.log(n_rotations(level)))
    log_z = jax.nn.logsumexp(jnp.stack(terms), axis=0)
    return best_rot, best_origin, best_score, log_z


@eqx.filter_jit
def _score_rotations_jit(projector, images, ctf, rotations, win, cfg, n, grid, v):
    parts = _prepare_particles(images, ctf, n, grid, v, cfg.apply_ctf)
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


def score_rotations(
    images, ctf: CTFParams, structure, rotations, pixel_size: float, config=None
) -> dict[str, np.ndarray]:
    """Scores of every particle at every given rotation and every window shift (no search).

    Returns ``scores`` (P, R, S) (the log-likelihood of particle p at rotation r and
    translation t_s), ``t`` (S, 2) the translations in pixels (origin = -t * pixel_size) and
    ``log_prior`` (S,). For checks and small problems: memory is P x R x G^2.
    """
    cfg = config or PoseSearchConfig()
    images = jnp.asarray(images, jnp.float32)
    n = images.shape[-1]
    v = float(pixel_size)
    grid, win, _ = _geometry(cfg, n, v)
    projector = prepare_reference(structure, n, v, cfg)
    s = _score_rotations_jit(
        projector, images, ctf, jnp.asarray(rotations, jnp.float32), win, cfg, n, grid, v
    )
    return {"scores": np.asarray(s), "t": np.asarray(win.t), "log_prior": np.asarray(win.log_prior)}


# -- drivers --------------------------------------------------------------------------------------
def _progress(total: int, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]pose search"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )
    return bar, bar.add_task("pose search", total=total, rate="")


def pose_search(
    dataset,
    structures: Sequence,
    config: PoseSearchConfig | None = None,
    *,
    indices=None,
    progress: bool = True,
) -> PoseSearchResult:
    """Search the pose of every particle of ``dataset`` against every structure.

    ``dataset``: a :class:`~cryoensemble.io.ParticleDataset` (or anything with ``box_size``,
    ``pixel_size``, ``__len__`` and ``batch(indices, pad_to=...)`` returning images and ctf).
    ``structures``: GaussianAtoms, volumes or MapProjectors (see :func:`prepare_reference`).
    The poses the dataset may hold are ignored. Returns a :class:`PoseSearchResult`.
    """
    cfg = config or PoseSearchConfig()
    if isinstance(structures, GaussianAtoms | MapProjector):
        structures = [structures]
    structures = list(structures)
    if not structures:
        raise InputError("at least one structure or map is needed")
    n_total = len(dataset)
    if n_total == 0:
        raise InputError(f"{getattr(dataset, 'star_path', 'dataset')}: no particles")
    idx_all = np.arange(n_total) if indices is None else np.asarray(indices, np.int64).reshape(-1)
    n, v = int(dataset.box_size), float(dataset.pixel_size)
    geoms, wins, max_shift = _plan(cfg, n, v)
    projectors = [prepare_reference(s, n, v, cfg) for s in structures]
    g = hopf_grid(cfg.base_level)
    base = (jnp.asarray(g.pixels), jnp.asarray(g.psi_index), jnp.asarray(g.rotations))
    pb, chunk = cfg.batch_sizes()
    pb = min(pb, len(idx_all))
    chunk = min(chunk, g.size)
    m = len(projectors)
    rot = np.zeros((len(idx_all), m, 3, 3), np.float32)
    org = np.zeros((len(idx_all), m, 2), np.float32)
    best = np.zeros((len(idx_all), m), np.float32)
    marg = np.zeros((len(idx_all), m), np.float32)
    bar, task = _progress(len(idx_all), progress)
    t0 = time.perf_counter()
    with bar:
        for s in range(0, len(idx_all), pb):
            b = idx_all[s : s + pb]
            batch = dataset.batch(b, pad_to=pb)
            for j, proj in enumerate(projectors):
                out = _search_batch(proj, batch.images, batch.ctf, base, wins, cfg, geoms, chunk)
                r, o, sc, lz = (np.asarray(a)[: len(b)] for a in out)
                rot[s : s + len(b), j], org[s : s + len(b), j] = r, o
                best[s : s + len(b), j], marg[s : s + len(b), j] = sc, lz
            done = s + len(b)
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=len(b), rate=f"{rate:,.2f} particles/s")
    elapsed = time.perf_counter() - t0
    if not (np.all(np.isfinite(best)) and np.all(np.isfinite(marg))):
        bad = int(idx_all[np.flatnonzero(~np.isfinite(marg).all(1) | ~np.isfinite(best).all(1))[0]])
        raise InputError(
            f"non-finite log-likelihood for particle {bad} (0-based): check the image "
            "(constant or NaN pixels?) and the options"
        )
    e = np.stack([np.asarray(a) for a in matrix_to_euler(jnp.asarray(rot))], axis=-1)
    info = {
        "grid": "Hopf fibration (HEALPix nested directions x uniform psi)",
        "levels": cfg.levels(),
        "base_level": cfg.base_level,
        "n_refine": cfg.n_refine,
        "n_candidates": cfg.n_candidates,
        "final_resolution_deg": cfg.final_resolution,
        "max_shift_angstrom": float(max_shift),
        "n_shifts": int(wins[-1].flat.shape[0]),
        "shift_sigma_angstrom": cfg.shift_sigma,
        "kind": cfg.kind,
        "exact": cfg.exact,
        "pad_factor": cfg.pad_factor,
        "template_grid": geoms[-1].grid,
        "level_boxes": [g.n for g in geoms],
        "level_pixel_sizes": [g.v for g in geoms],
        "level_template_grids": [g.grid for g in geoms],
        "marginal_sampling": f"{geoms[-1].n} px of {geoms[-1].v:.4g} A (the final level)",
        "coarse_box": cfg.coarse_box,
        "band_limit": cfg.band_limit,
        "interpolation": cfg.interpolation,
        "apply_ctf": cfg.apply_ctf,
        "elapsed_s": elapsed,
        "particles_per_s": len(idx_all) / max(elapsed, 1e-9),
        "backend": jax.default_backend(),
    }
    return PoseSearchResult(rot, e.astype(np.float32), org, best, marg, idx_all, info)


def pose_search_arrays(
    images, ctf: CTFParams, pixel_size: float, structures, config=None, progress: bool = False
) -> PoseSearchResult:
    """:func:`pose_search` on in-memory images (n, N, N) with a batched ``ctf``."""
    return pose_search(
        ArrayParticles(images, ctf, pixel_size), structures, config, progress=progress
    )


def marginal_log_likelihood_matrix(
    dataset, structures: Sequence, config: PoseSearchConfig | None = None, **kwargs
) -> np.ndarray:
    """L (n_particles, n_structures) float32: log p(image | structure) with the pose (rotation
    and shift) marginalised over the search grid. Feed it to
    :func:`cryoensemble.inference.fit_weights_em` / ``sample_posterior_gibbs`` /
    ``reweight_matrix`` to reweight without known poses."""
    return pose_search(dataset, structures, config, **kwargs).marginal_log_likelihood


# -- outputs: STAR file, angular errors, plots ------------------------------------------------------
def input_poses_as_truth(table, mode: str = "auto") -> bool:
    """Whether the input STAR file's rlnAngleRot/Tilt/Psi are taken as the ground truth.

    ``mode``: "input" (always; the columns must exist), "none" (never) or "auto" (when the three
    angle columns are present and not all zero, as in files written by ``cryoensemble simulate``;
    a file without angles reads as all zeros)."""
    if mode not in ("auto", "input", "none"):
        raise InputError(f"--truth must be auto, input or none, got {mode!r}")
    if mode == "none":
        return False
    cols = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
    present = all(c in table.particles.columns for c in cols)
    if mode == "input":
        if not present:
            raise InputError(f"{table.path}: --truth input needs the columns {', '.join(cols)}")
        return True
    return present and bool(np.any(table.particles[list(cols)].to_numpy(np.float64) != 0))


def angular_errors(rotations, euler_true) -> np.ndarray:
    """Geodesic angle (degrees) between estimated rotations (n, 3, 3) and true Euler angles
    (n, 3) (rot, tilt, psi)."""
    from cryoensemble.pose._euler import euler_to_matrix
    from cryoensemble.pose._superpose import rotation_angle

    e = jnp.asarray(euler_true, jnp.float32)
    truth = euler_to_matrix(e[:, 0], e[:, 1], e[:, 2])
    return np.asarray(rotation_angle(jnp.asarray(rotations, jnp.float32), truth), np.float64)


def poses_table(table, result: PoseSearchResult, names: Sequence[str], truth: bool):
    """(optics, particles) DataFrames: the input table with the estimated poses (for each
    particle, those of its most likely structure) in the RELION columns, absolute image paths,
    and cryoensemblePose* columns; with ``truth`` the input poses are kept as
    cryoensembleInputAngle*/Origin* and the angular error is added."""
    from cryoensemble.io._star import format_image_name, parse_image_name, resolve_image_path

    sub = table.subset(result.indices)
    p = sub.particles.copy()
    best = result.best()
    if truth:
        for c in ("AngleRot", "AngleTilt", "AnglePsi", "OriginXAngst", "OriginYAngst"):
            p[f"cryoensembleInput{c}"] = p[f"rln{c}"].to_numpy(np.float64)
        true_e = p[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(np.float64)
        p["cryoensembleAngularError"] = angular_errors(best["rotations"], true_e)
    for j, c in enumerate(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
        p[c] = best["euler"][:, j].astype(np.float64)
    p["rlnOriginXAngst"] = best["origins"][:, 0].astype(np.float64)
    p["rlnOriginYAngst"] = best["origins"][:, 1].astype(np.float64)
    p["cryoensemblePoseLogLikelihood"] = best["log_likelihood"].astype(np.float64)
    p["cryoensemblePoseMarginalLogLikelihood"] = best["marginal_log_likelihood"].astype(np.float64)
    p["cryoensemblePoseStructureIndex"] = best["structure"].astype(np.int64)
    if len(names) > 1:
        p["cryoensemblePoseStructure"] = [names[k] for k in best["structure"]]
    star = table.path if table.path is not None else Path.cwd() / "in-memory.star"
    cache: dict[str, str] = {}
    out_names = []
    for s in p["rlnImageName"]:
        i, stack = parse_image_name(s)
        if stack not in cache:
            cache[stack] = str(resolve_image_path(stack, star))
        out_names.append(format_image_name(i, cache[stack]))
    p["rlnImageName"] = out_names
    return sub.optics, p


def plot_angular_distribution(euler, path) -> None:
    """Hammer-projection histogram of the viewing directions (rot = longitude, 90 - tilt =
    latitude) of Euler angles (n, 3) in degrees."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    e = np.asarray(euler, np.float64)
    lon = np.deg2rad((e[:, 0] + 180.0) % 360.0 - 180.0)
    lat = np.deg2rad(90.0 - e[:, 1])
    fig = plt.figure(figsize=(7, 4))
    ax = fig.add_subplot(111, projection="hammer")
    lon_edges = np.linspace(-np.pi, np.pi, 37)
    z_edges = np.linspace(-1, 1, 19)  # equal-area bands in sin(latitude)
    h, _, _ = np.histogram2d(lon, np.sin(lat), bins=[lon_edges, z_edges])
    lo, la = np.meshgrid(lon_edges, np.arcsin(z_edges), indexing="ij")
    mesh = ax.pcolormesh(lo, la, h, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, shrink=0.7, label="particles per equal-area bin")
    ax.grid(True, alpha=0.4)
    ax.set_title(f"viewing directions ({len(e)} particles): rot (longitude), 90 - tilt", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_angular_error(errors, resolution: float, path) -> None:
    """Histogram of angular errors (degrees) with the median and the final grid spacing."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    err = np.asarray(errors, np.float64)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    top = max(float(np.percentile(err, 99)) * 1.1, 2 * resolution)
    ax.hist(np.clip(err, 0, top), bins=60, range=(0, top), color="tab:blue", alpha=0.8)
    med = float(np.median(err))
    ax.axvline(med, color="k", ls="--", label=f"median {med:.2f} deg")
    ax.axvline(resolution, color="tab:red", ls=":", label=f"final grid spacing {resolution:g} deg")
    ax.set_xlabel("angular error (degrees; clipped at the right edge)")
    ax.set_ylabel("particles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def error_summary(errors) -> dict:
    err = np.asarray(errors, np.float64)
    return {
        "median_deg": float(np.median(err)),
        "mean_deg": float(np.mean(err)),
        "p90_deg": float(np.percentile(err, 90)),
        "max_deg": float(np.max(err)),
        "fraction_over_10deg": float(np.mean(err > 10)),
    }
