"""The likelihood marginalised over a local neighbourhood of each particle's given pose, and the
estimation of the neighbourhood's width (the pose-error prior) from the data.

For a particle with given rotation A (RELION matrix) and shift s (Angstrom):

    log p(y | structure) = log sum_q sum_t w_q(sigma_rot) w_t(sigma_shift) exp L(y | exp([w_q]_x) A, s + t)

with L the (affine-fitted, variance-marginalised, or white) image log-likelihood of the pose
search's scoring kernel. Rotations: the points w_q of a cubic lattice in rotation-vector space
(degrees) inside a ball of radius ``extent`` x sigma_rot, ``rotation_steps`` lattice steps per
radius, weighted by an isotropic Gaussian of standard deviation sigma_rot per axis (normalised
over the points: a midpoint rule, accurate once the step is at most ~1.5 sigma). Shifts: the
translations t on a grid of ``shift_step`` pixels inside a disc of radius ``extent`` x
sigma_shift, Gaussian weights of sigma_shift per axis; all of them from one correlation per
rotation (the integer part by the FFT cross-correlation of
:func:`~cryoensemble.posesearch.shift_window`, the sub-pixel part by phase ramps), never by
re-projecting. The templates are Fourier slices of a map (one per rotation and structure), so a
pair costs R slices and R x D inverse FFTs (R rotations, D sub-pixel offsets).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import ArrayLike, Float

from cryoensemble.errors import InputError, check_positive
from cryoensemble.imaging import AbstractParticles
from cryoensemble.ndimage import fourier_crop
from cryoensemble.noise import ColoredGaussianNoise, NoiseSpectra
from cryoensemble.pose import quaternion_to_matrix
from cryoensemble.posesearch._config import KINDS, PoseSearchConfig
from cryoensemble.posesearch._kernels import (
    _expand_window,
    _Geom,
    _level_config,
    _phase_ramp,
    _plan,
    _prepare_particles,
    _score_all,
    _slices,
    _Window,
    shift_window,
)
from cryoensemble.posesearch._search import Reference, _as_list, prepare_reference
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter

__all__ = [
    "LocalPoseConfig",
    "PosePriorEstimate",
    "estimate_pose_prior",
    "local_marginal_log_likelihood_matrix",
    "local_marginal_with_estimated_prior",
    "rotation_quadrature",
]


@dataclasses.dataclass(frozen=True)
class LocalPoseConfig:
    """Settings of the local pose marginalisation (hashable; invalid values raise
    :class:`~cryoensemble.errors.InputError`).

    Arguments:
        rotation_sigma: standard deviation (degrees) of the pose error per axis of the rotation
            vector (0: the given rotation only).
        shift_sigma: standard deviation (Angstrom) of the shift error per axis (0: the given
            shift only).
        extent: the neighbourhood's radius, in standard deviations (rotations and shifts).
        rotation_steps: lattice steps per radius in rotation-vector space (2: 33 rotations,
            3: 123).
        shift_step: spacing (pixels) of the shift grid; 1 / shift_step must be an integer.
        kind: "marginal" (scale and offset fitted, variance marginalised) or "white".
        sigma: white-noise standard deviation (image units) for "white".
        exact: the full marginal formula (see ``docs/likelihood.md``).
        pad_factor: the template grid for the CTF (2 as the imaging pipeline; 1 is faster).
        interpolation: Fourier-slice interpolation ("linear" or "cubic").
        apply_ctf: multiply the templates by each particle's CTF.
        band_limit: score the images Fourier-cropped to Nyquist = 1 / band_limit (Angstrom;
            None: the full images).
        particle_batch: particles read at once (None: 16 on CPU, 128 on GPU).
    """

    rotation_sigma: float = 2.0
    shift_sigma: float = 1.0
    extent: float = 2.5
    rotation_steps: int = 2
    shift_step: float = 0.5
    kind: str = "marginal"
    sigma: float | None = None
    exact: bool = True
    pad_factor: float = 2.0
    interpolation: str = "linear"
    apply_ctf: bool = True
    band_limit: float | None = None
    particle_batch: int | None = None

    def __post_init__(self) -> None:
        for name in ("rotation_sigma", "shift_sigma"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InputError(f"{name.replace('_', ' ')} must be >= 0, got {value!r}")
        check_positive("extent (standard deviations)", self.extent)
        if isinstance(self.rotation_steps, bool) or int(self.rotation_steps) != self.rotation_steps:
            raise InputError(f"rotation steps must be an integer, got {self.rotation_steps!r}")
        if not 1 <= self.rotation_steps <= 6:
            raise InputError(f"rotation steps must be in 1..6, got {self.rotation_steps}")
        check_positive("shift step (pixels)", self.shift_step)
        k = 1.0 / self.shift_step
        if self.shift_step > 1 or abs(k - round(k)) > 1e-6:
            raise InputError(f"1 / shift step must be an integer, got shift step {self.shift_step}")
        if self.kind not in KINDS:
            raise InputError(f"likelihood must be one of {KINDS}, got {self.kind!r}")
        if self.particle_batch is not None and int(self.particle_batch) < 1:
            raise InputError(f"particle batch must be >= 1, got {self.particle_batch!r}")
        self.search_config()  # the likelihood, padding and band-limit checks

    def search_config(self) -> PoseSearchConfig:
        """The pose-search settings of the scoring kernel (likelihood, padding, band limit)."""
        return PoseSearchConfig(
            n_refine=0,
            kind=self.kind,
            sigma=self.sigma,
            exact=self.exact,
            pad_factor=self.pad_factor,
            interpolation=self.interpolation,
            apply_ctf=self.apply_ctf,
            coarse_box=None,
            band_limit=self.band_limit,
        )

    @property
    def n_rotations(self) -> int:
        """Rotations of the quadrature per particle."""
        return len(rotation_quadrature(self.rotation_sigma, self.extent, self.rotation_steps)[0])

    def batch_size(self) -> tuple[int, int]:
        """(particles read at once, particles scored at once inside it) for the JAX backend."""
        cpu = jax.default_backend() == "cpu"
        return int(self.particle_batch or (16 if cpu else 128)), 1 if cpu else 8


# -- quadratures -------------------------------------------------------------------------------
def _gaussian_log_weights(points: np.ndarray, sigma: float) -> np.ndarray:
    """Log weights (normalised) of an isotropic Gaussian of ``sigma`` per axis at ``points``
    (K, d); sigma = 0: all the weight on the origin."""
    r2 = np.sum(np.asarray(points, np.float64) ** 2, axis=-1)
    if sigma == 0:
        at0 = r2 < 1e-12
        if not at0.any():
            raise InputError("the quadrature has no point at the given pose")
        return np.where(at0, -math.log(at0.sum()), -np.inf)
    e = -r2 / (2.0 * sigma**2)
    return e - (np.log(np.sum(np.exp(e - e.max()))) + e.max())


def rotation_quadrature(
    sigma_deg: float, extent: float = 2.5, steps: int = 2
) -> tuple[Float[np.ndarray, "r 3"], Float[np.ndarray, " r"]]:
    """The rotation-vector points (degrees) and log weights of the local rotation quadrature.

    Arguments:
        sigma_deg: standard deviation (degrees) per axis of the rotation vector.
        extent: radius of the ball in standard deviations.
        steps: lattice steps per radius (the spacing is extent * sigma_deg / steps).

    Returns:
        ``omega`` (R, 3) rotation vectors in degrees (the origin first) and ``log_w`` (R,)
        normalised log weights.
    """
    if sigma_deg == 0:
        return np.zeros((1, 3)), np.zeros(1)
    i = np.arange(-steps, steps + 1)
    lattice = np.stack(np.meshgrid(i, i, i, indexing="ij"), -1).reshape(-1, 3)
    r2 = np.sum(lattice**2, axis=1)
    lattice = lattice[np.argsort(r2, kind="stable")][np.sort(r2) <= steps**2 + 1e-9]
    omega = lattice * (extent * sigma_deg / steps)
    return omega, _gaussian_log_weights(omega, sigma_deg)


def _perturbations(omega_deg: np.ndarray) -> jax.Array:
    """(R, 3, 3) rotations exp([omega]_x) of rotation vectors (R, 3) in degrees."""
    w = np.deg2rad(np.asarray(omega_deg, np.float64))
    theta = np.linalg.norm(w, axis=-1, keepdims=True)
    half = np.sinc(theta / (2 * np.pi)) / 2  # sin(theta / 2) / theta, 1/2 at 0
    q = np.concatenate([np.cos(theta / 2), half * w], axis=-1)
    return quaternion_to_matrix(jnp.asarray(q, jnp.float32))


@dataclasses.dataclass(frozen=True)
class _Shifts:
    """The shift quadrature: integer window x sub-pixel offsets, and its points t (pixels)."""

    window: _Window  # the integer translations the correlation map is read at
    offsets: jax.Array | None  # (D, 2) pixels, None: integers only
    t: np.ndarray  # (D * S, 2) translations (pixels) from the given shift


def _shift_points(sigma_px: float, extent: float, step: float, grid: int) -> _Shifts:
    """Translations t (pixels) on a grid of ``step`` within extent * sigma_px of the origin."""
    radius = extent * sigma_px
    win = shift_window(math.floor(radius) + 1 if sigma_px > 0 else 0, grid)
    window = _Window(*(jnp.asarray(win[k]) for k in ("flat", "t", "log_prior", "neighbours")))
    k = round(1.0 / step)
    if sigma_px == 0 or k == 1:
        return _Shifts(window, None, np.asarray(win["t"], np.float64))
    a = np.arange(k) / k
    offsets = np.stack(np.meshgrid(a, a, indexing="xy"), -1).reshape(-1, 2).astype(np.float32)
    t = np.asarray(_expand_window(window, offsets).t, np.float64)
    return _Shifts(window, jnp.asarray(offsets), t)


def _shift_log_weights(shifts: _Shifts, sigma_px: float, radius_px: float) -> np.ndarray:
    """Gaussian log weights of the shift points inside the disc of ``radius_px``."""
    inside = np.sum(shifts.t**2, axis=1) <= radius_px**2 + 1e-9
    w = _gaussian_log_weights(shifts.t[inside], sigma_px)
    out = np.full(len(shifts.t), -np.inf)
    out[inside] = w
    return out


# -- the kernel --------------------------------------------------------------------------------
def _whitening_filter(psd: jax.Array, n: int, g: _Geom) -> jax.Array:
    """1 / sqrt(PSD) on the template grid (G, G//2+1) of ``g``, from the PSD (n, n//2+1) of the
    full images: each template frequency takes the PSD of the nearest full-grid frequency
    (exact when the template grid is the scored box, pad factor 1)."""
    ky = np.rint(np.fft.fftfreq(g.grid) * g.n).astype(int) % n
    kx = np.rint(np.fft.rfftfreq(g.grid) * g.n).astype(int)
    return 1.0 / jnp.sqrt(psd[ky[:, None], kx[None, :]])


@eqx.filter_jit
def _local_scores(
    projector, images, rotations, shifts, params, deltas, window, offsets, psd, cfg, g, per_step
):
    """Scores (P, R, D * S) of a batch at the perturbed rotations and the shifted translations
    (whitened by each particle's ``psd`` (P, n, n//2+1) when given)."""
    n = images.shape[-1]
    if psd is not None:
        images = jax.vmap(lambda im, ps: ColoredGaussianNoise(ps).whiten(im))(images, psd)
    cropped = fourier_crop(images, g.n)
    parts = _prepare_particles(cropped, params, g.n, g.grid, g.v, cfg.apply_ctf)
    if psd is not None:  # the templates get the same filter through the CTF factor
        w = jax.vmap(lambda ps: _whitening_filter(ps, n, g))(psd)
        parts = eqx.tree_at(lambda p: p.ctf, parts, parts.ctf * w)
    lc = _level_config(cfg, g)
    t_given = -jnp.asarray(shifts, jnp.float32) / g.v  # rlnOriginX/YAngst = -t v

    def one(args):
        part, rot, t0 = args
        # the given shift goes into the templates (their box statistics are then exact there)
        templates = _slices(projector, deltas @ rot, g.grid, g.scale)
        templates = templates * _phase_ramp(t0[None], g.grid)
        return _score_all(templates, part, window, lc, g.n, g.grid, g.v, offsets)

    return lax.map(one, (parts, rotations, t_given), batch_size=per_step)


def _score_batches(
    dataset: AbstractParticles,
    structures,
    config: LocalPoseConfig,
    omega_deg: np.ndarray,
    shift_sigma_max: float,
    indices,
    reduce: Callable,
    progress: AbstractProgressMeter,
    label: str,
    psd: ArrayLike | NoiseSpectra | None = None,
):
    """Run the kernel over the particles (batches) and structures; ``reduce(scores, shift_t)``
    turns each (P, R, S) block into per-particle results (stacked along the particles)."""
    structures = _as_list(structures)
    if len(dataset) == 0:
        raise InputError(f"{getattr(dataset, 'star_path', 'dataset')}: no particles")
    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, np.int64).ravel()
    n, v = int(dataset.box_size), float(dataset.pixel_size)
    cfg = config.search_config()
    geoms, _, _ = _plan(cfg, n, v)
    g: _Geom = geoms[-1]
    quad = _shift_points(shift_sigma_max / g.v, config.extent, config.shift_step, g.grid)
    projectors = [prepare_reference(s, n, v, cfg) for s in structures]
    deltas = _perturbations(omega_deg)
    pb, per_step = config.batch_size()
    pb = min(pb, len(idx))
    rows: list[list] = [[] for _ in projectors]
    psd_of = _psd_lookup(psd, n, len(dataset))
    t0 = time.perf_counter()
    with progress.task(label, total=len(idx), unit="particles") as task:
        for s in range(0, len(idx), pb):
            b = idx[s : s + pb]
            batch = dataset.batch(b, pad_to=pb)
            psd_j = psd_of(np.concatenate([b, np.repeat(b[-1:], pb - len(b))]))
            for j, proj in enumerate(projectors):
                sc = _local_scores(
                    proj, batch.images, batch.rotations, batch.shifts, batch.ctf,
                    deltas, quad.window, quad.offsets, psd_j, cfg, g, per_step,
                )  # fmt: skip
                rows[j].append(np.asarray(reduce(sc, quad, g))[: len(b)])
            rate = (s + len(b)) / max(time.perf_counter() - t0, 1e-9)
            task.advance(len(b), rate=f"{rate:,.2f} particles/s")
    return [np.concatenate(r) for r in rows], idx, g


def _psd_lookup(psd, n: int, n_particles: int) -> Callable:
    """indices (P,) -> their PSDs (P, n, n//2+1) float32 (or None without whitening)."""
    if psd is None:
        return lambda idx: None
    if isinstance(psd, NoiseSpectra):
        if psd.box_size != n or len(psd) != n_particles:
            raise InputError(
                f"the noise spectra cover {len(psd)} particles of {psd.box_size} pixels, the "
                f"dataset has {n_particles} of {n}"
            )
        return lambda idx: psd.psd(jnp.asarray(idx)).astype(jnp.float32)
    one = jnp.asarray(psd, jnp.float32)
    if one.shape != (n, n // 2 + 1):
        raise InputError(f"noise PSD shape {one.shape} does not match {n}-pixel images")
    return lambda idx: jnp.broadcast_to(one, (len(idx),) + one.shape)


@jax.jit
def _log_sum(scores, log_wr, log_ws):
    """(P,) log sum_q sum_t w_q w_t exp(score)."""
    lp = scores + log_wr[None, :, None] + log_ws[None, None, :]
    return jax.nn.logsumexp(lp.reshape(lp.shape[0], -1), axis=1)


def local_marginal_log_likelihood_matrix(
    dataset: AbstractParticles,
    structures: Reference | Sequence[Reference],
    config: LocalPoseConfig | None = None,
    *,
    indices: ArrayLike | Sequence[int] | None = None,
    psd: Float[ArrayLike, "N k"] | NoiseSpectra | None = None,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> Float[np.ndarray, "n m"]:
    """L (n_particles, n_structures) float32: log p(image | structure) marginalised over the
    rotations and shifts near each particle's given pose (see :mod:`cryoensemble.posesearch`).

    With zero widths it is the likelihood at the given pose of the map-projected structure.
    Memory: one batch of particles, R rotations x D sub-pixel offsets correlation maps at a time
    per particle scored. Feed it to :func:`cryoensemble.inference.fit_weights_em` as the
    known-pose matrix.

    Arguments:
        dataset: the particles, with their poses (rotations, shifts in Angstrom) and CTFs.
        structures: GaussianAtoms, volumes or MapProjectors (see
            :func:`~cryoensemble.posesearch.prepare_reference`).
        config: the neighbourhood and likelihood (default :class:`LocalPoseConfig`).
        indices: 0-based particles (default all).
        psd: the noise power spectrum (n, n // 2 + 1) of the images (rfft layout), or
            per-particle :class:`~cryoensemble.noise.NoiseSpectra`: data and templates are
            whitened by it (the "colored" likelihood with kind "marginal"; exact
            with pad_factor 1, the PSD taken at the nearest frequency on a padded grid).
        progress: reports the particles done.
    """
    cfg = config or LocalPoseConfig()
    omega, log_wr = rotation_quadrature(cfg.rotation_sigma, cfg.extent, cfg.rotation_steps)

    def reduce(scores, quad, g):
        sigma_px = cfg.shift_sigma / g.v
        log_ws = _shift_log_weights(quad, sigma_px, cfg.extent * sigma_px)
        return _log_sum(scores, jnp.asarray(log_wr, jnp.float32), jnp.asarray(log_ws, jnp.float32))

    cols, idx, _ = _score_batches(
        dataset, structures, cfg, omega, cfg.shift_sigma, indices, reduce, progress,
        "local poses", psd,
    )  # fmt: skip
    out = np.stack(cols, axis=1).astype(np.float32)
    if not np.isfinite(out).all():
        bad = int(idx[np.flatnonzero(~np.isfinite(out).all(1))[0]])
        raise InputError(
            f"non-finite log-likelihood for particle {bad} (0-based): check the image "
            "(constant or NaN pixels?) and the options"
        )
    return out


# -- the prior widths from the data ----------------------------------------------------------------
@dataclasses.dataclass
class PosePriorEstimate:
    """The pose-error widths that maximise the total marginal likelihood of the particles.

    Arguments:
        rotation_sigma: the estimate (degrees per axis of the rotation vector).
        shift_sigma: the estimate (Angstrom per axis).
        rotation_grid: (K,) the rotation widths tried (degrees).
        shift_grid: (J,) the shift widths tried (Angstrom).
        log_evidence: (K, J) sum over the particles of log (1/M) sum_m p(image | structure m).
        n_particles: particles used.
    """

    rotation_sigma: float
    shift_sigma: float
    rotation_grid: np.ndarray
    shift_grid: np.ndarray
    log_evidence: np.ndarray
    n_particles: int

    def to_json(self) -> dict:
        """The estimate and its search grid as plain JSON types."""
        return {
            "rotation_sigma_deg": self.rotation_sigma,
            "shift_sigma_angstrom": self.shift_sigma,
            "rotation_grid_deg": self.rotation_grid.tolist(),
            "shift_grid_angstrom": self.shift_grid.tolist(),
            "log_evidence": self.log_evidence.tolist(),
            "n_particles": self.n_particles,
        }


def _vertex(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """The maximum of the parabola through the points k-1, k, k+1 (x[k] at an end)."""
    if k == 0 or k == len(x) - 1:
        return float(x[k])
    a = np.polyfit(x[k - 1 : k + 2], y[k - 1 : k + 2], 2)
    if a[0] >= 0:
        return float(x[k])
    return float(np.clip(-a[1] / (2 * a[0]), x[k - 1], x[k + 1]))


def estimate_pose_prior(
    dataset: AbstractParticles,
    structures: Reference | Sequence[Reference],
    config: LocalPoseConfig | None = None,
    *,
    rotation_grid: Sequence[float] = (0.0, 1.0, 2.0, 3.0, 4.5, 6.0),
    shift_grid: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0),
    indices: ArrayLike | Sequence[int] | None = None,
    psd: Float[ArrayLike, "N k"] | NoiseSpectra | None = None,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> PosePriorEstimate:
    """Estimate the pose-error widths by a 2-D grid search on the total marginal likelihood.

    Every rotation width is scored with its own quadrature (``config``'s extent and steps); the
    shifts are scored once on the grid of the largest shift width and reweighted for each. The
    estimate is the grid maximum refined by a parabola along each axis. The structures enter as
    an equal-weight mixture. Use a subset of the particles (``indices``: a few hundred suffice).

    Arguments:
        dataset: the particles, with their poses and CTFs.
        structures: GaussianAtoms, volumes or MapProjectors.
        config: the quadrature and likelihood settings (its widths are ignored).
        rotation_grid: rotation widths to try (degrees, increasing).
        shift_grid: shift widths to try (Angstrom, increasing).
        indices: 0-based particles (default all).
        psd: the noise power spectrum (n, n // 2 + 1) of the images (rfft layout), or
            per-particle :class:`~cryoensemble.noise.NoiseSpectra`: data and templates are
            whitened by it (the "colored" likelihood with kind "marginal"; exact
            with pad_factor 1, the PSD taken at the nearest frequency on a padded grid).
        progress: reports the particles done.
    """
    cfg = config or LocalPoseConfig()
    rg, sg = np.asarray(rotation_grid, np.float64), np.asarray(shift_grid, np.float64)
    if rg.size < 1 or sg.size < 1 or np.any(np.diff(rg) <= 0) or np.any(np.diff(sg) <= 0):
        raise InputError("the width grids must be non-empty and increasing")
    if rg[0] < 0 or sg[0] < 0:
        raise InputError("the widths must be >= 0")
    table = np.zeros((rg.size, sg.size))
    n_used = 0
    for i, sr in enumerate(rg):
        omega, log_wr = rotation_quadrature(float(sr), cfg.extent, cfg.rotation_steps)

        def reduce(scores, quad, g, log_wr=log_wr):
            per_shift = jax.nn.logsumexp(scores + jnp.asarray(log_wr, jnp.float32)[:, None], 1)
            out = []
            for ss in sg:
                sigma_px = ss / g.v
                log_ws = _shift_log_weights(quad, sigma_px, cfg.extent * sigma_px)
                out.append(jax.nn.logsumexp(per_shift + jnp.asarray(log_ws, jnp.float32), 1))
            return jnp.stack(out, axis=1)  # (P, J)

        cols, idx, _ = _score_batches(
            dataset, structures, cfg, omega, float(sg[-1]), indices, reduce, progress,
            f"pose prior {sr:g} deg", psd,
        )  # fmt: skip
        per = np.stack(cols, axis=0).astype(np.float64)  # (M, P, J)
        mix = np.logaddexp.reduce(per, axis=0) - math.log(per.shape[0])
        table[i] = mix.sum(axis=0)
        n_used = len(idx)
    bi, bj = (int(k) for k in np.unravel_index(int(np.argmax(table)), table.shape))
    return PosePriorEstimate(
        rotation_sigma=_vertex(rg, table[:, bj], bi),
        shift_sigma=_vertex(sg, table[bi, :], bj),
        rotation_grid=rg,
        shift_grid=sg,
        log_evidence=table,
        n_particles=n_used,
    )


def local_marginal_with_estimated_prior(
    dataset: AbstractParticles,
    structures: Reference | Sequence[Reference],
    config: LocalPoseConfig | None = None,
    *,
    n_estimate: int = 200,
    seed: int = 0,
    psd: Float[ArrayLike, "N k"] | NoiseSpectra | None = None,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> tuple[Float[np.ndarray, "n m"], PosePriorEstimate]:
    """The local pose-marginalised matrix with the widths estimated from the data: the default
    for particles whose poses come from a refinement.

    The widths are estimated by :func:`estimate_pose_prior` (default grids) on ``n_estimate``
    particles drawn at random, then every particle is scored with them.

    Arguments:
        dataset: the particles, with their poses and CTFs.
        structures: GaussianAtoms, volumes or MapProjectors.
        config: quadrature and likelihood settings (its widths are replaced by the estimate).
        n_estimate: particles used for the estimate.
        seed: the draw of those particles.
        psd: the noise power spectrum (n, n // 2 + 1) of the images (rfft layout), or
            per-particle :class:`~cryoensemble.noise.NoiseSpectra`: data and templates are
            whitened by it (the "colored" likelihood with kind "marginal"; exact
            with pad_factor 1, the PSD taken at the nearest frequency on a padded grid).
        progress: reports the particles done.

    Returns:
        L (n_particles, n_structures) float32 and the :class:`PosePriorEstimate`.
    """
    cfg = config or LocalPoseConfig()
    if int(n_estimate) < 1:
        raise InputError(f"particles for the estimate must be >= 1, got {n_estimate!r}")
    n = len(dataset)
    rng = np.random.default_rng(seed)
    subset = np.sort(rng.choice(n, min(n, int(n_estimate)), replace=False))
    est = estimate_pose_prior(dataset, structures, cfg, indices=subset, psd=psd, progress=progress)
    cfg = dataclasses.replace(cfg, rotation_sigma=est.rotation_sigma, shift_sigma=est.shift_sigma)
    L = local_marginal_log_likelihood_matrix(dataset, structures, cfg, psd=psd, progress=progress)
    return L, est
