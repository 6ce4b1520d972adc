"""The likelihood matrix L[n, m] = log p(image n | structure m), computed in bounded memory.

The dataset is read ``batch_size`` particles at a time (padded to one fixed shape so that the
computation compiles once). For each batch one jitted function forms the model image of every
structure at every particle's pose and CTF with the imaging pipeline
(:func:`~cryoensemble.imaging.simulate_images`, ``config.chunk_size`` images at a time), and
reduces each (particle, structure) pair to a log-likelihood; data-image terms (centring, whitening)
are computed once per particle. Structures are zero-padded to a common atom count (atoms of zero
amplitude add nothing) and stacked, so one compiled function serves them all.

Devices: with several local JAX devices the batch is split along the particle axis with
``jax.shard_map`` over a 1-D mesh named ``"particles"`` (results are identical to one device: the
per-particle arithmetic is the same). Under ``jax.distributed`` every process takes every
``process_count()``-th batch, and the rows are gathered with ``multihost_utils.process_allgather``
at the end, so every process returns the full matrix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, ArrayLike, Float, Int

from cryoensemble.errors import InputError, check_positive
from cryoensemble.imaging import AbstractParticles, ArrayParticles, ImagingConfig, simulate_images
from cryoensemble.inference._likelihood import centre_in_mask, marginal_from_centred
from cryoensemble.noise import (
    AbstractGaussianNoise,
    ColoredGaussianNoise,
    NoiseSpectra,
    WhiteGaussianNoise,
)
from cryoensemble.optics import CTFParams
from cryoensemble.parallel import PARTICLE_AXIS, particle_mesh
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.projection import MapProjector, project_map
from cryoensemble.scattering import GaussianAtoms

__all__ = [
    "KINDS",
    "LikelihoodConfig",
    "batch_log_likelihoods",
    "likelihood_matrix",
    "likelihood_matrix_arrays",
    "stack_structures",
]

#: white: known sigma; marginal: scale/offset fitted, variance marginalised; colored: whiten with
#: the PSD (one for all particles, or each particle's from :class:`~cryoensemble.noise.
#: NoiseSpectra`) then marginal; colored_white: whiten then white with sigma = 1 (absolute PSD).
KINDS = ("white", "marginal", "colored", "colored_white")


class LikelihoodConfig(eqx.Module):
    """What likelihood to evaluate (a pytree: arrays are leaves, the rest static).

    The kind names a noise model (:attr:`noise_model`) and whether the per-particle scale, offset
    and noise level are marginalised (:attr:`marginal`); all validation happens here.

    Arguments:
        kind: one of :data:`KINDS`.
        sigma: the noise standard deviation (image units) for "white".
        psd: the noise PSD on the rfft grid (n, n // 2 + 1) for the coloured kinds, shared by
            every particle.
        spectra: per-particle noise spectra for the coloured kinds (instead of ``psd``;
            :func:`cryoensemble.noise.estimate_noise_spectra`), looked up by the particles'
            0-based indices in the dataset.
        mask: an (n, n) 0/1 (or boolean) array (e.g. :func:`cryoensemble.ndimage.circular_mask`)
            or None for all pixels.
        mask3d: a :class:`~cryoensemble.projection.MapProjector` of a 3-D 0/1 mask (voxel = pixel,
            box = image box), projected at each particle's pose; pixels whose projection exceeds
            ``mask3d_threshold`` voxels of path length are kept (intersected with ``mask``).
        mask3d_threshold: see ``mask3d`` (voxels).
        exact: the full marginal formula (True) or the reference -(N/2) log ||r||^2 (False).
    """

    kind: str = eqx.field(static=True, default="marginal")
    sigma: float | None = eqx.field(static=True, default=None)
    psd: Float[Array, "n m"] | None = None
    spectra: NoiseSpectra | None = None
    mask: Array | None = None
    mask3d: MapProjector | None = None
    mask3d_threshold: float = eqx.field(static=True, default=0.5)
    exact: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.kind not in KINDS:
            raise InputError(
                f"likelihood kind must be one of {', '.join(KINDS)}, got {self.kind!r}"
            )
        if self.kind == "white":
            if self.sigma is None:
                raise InputError("the white-noise likelihood needs the noise sigma (--noise-sigma)")
            check_positive("noise sigma", self.sigma)
        coloured = self.kind.startswith("colored")
        if coloured and (self.psd is None) == (self.spectra is None):
            raise InputError(
                f"the {self.kind} likelihood needs a noise power spectrum: psd or spectra (one)"
            )

    @property
    def marginal(self) -> bool:
        """Whether the scale, offset and noise level are marginalised."""
        return self.kind in ("marginal", "colored")

    @property
    def noise_model(self) -> AbstractGaussianNoise | None:
        """The noise model shared by every particle: white (sigma), coloured (psd), or None
        ("marginal": no whitening; per-particle ``spectra``: see :meth:`particle_psds`)."""
        if self.kind == "white" and self.sigma is not None:
            return WhiteGaussianNoise(jnp.asarray(self.sigma))
        if self.kind.startswith("colored") and self.psd is not None:
            return ColoredGaussianNoise(self.psd)
        return None

    def particle_psds(self, indices: Int[ArrayLike, " b"] | None) -> Float[Array, "b n m"] | None:
        """Each particle's PSD from ``spectra`` (None without spectra).

        Arguments:
            indices: (b,) 0-based particle indices in the dataset.
        """
        if self.spectra is None:
            return None
        if indices is None:
            raise InputError("per-particle noise spectra need the particles' indices")
        return self.spectra.psd(indices)


def stack_structures(structures: Sequence[GaussianAtoms]) -> GaussianAtoms:
    """Stack structures along a leading axis, padding to a common atom count with atoms of zero
    amplitude (which contribute nothing to any image).

    Arguments:
        structures: M :class:`~cryoensemble.scattering.GaussianAtoms` with the same number of
            Gaussians per atom.

    Returns:
        :class:`~cryoensemble.scattering.GaussianAtoms` with arrays of shape (M, n_max, ...).
    """
    if len(structures) == 0:
        raise InputError("at least one structure is needed")
    n_max = max(s.n_atoms for s in structures)
    k = structures[0].amplitudes.shape[1]
    pos, amp, var = [], [], []
    for s in structures:
        if s.amplitudes.shape[1] != k:
            raise InputError("all structures must have the same number of Gaussians per atom")
        pad = n_max - s.n_atoms
        pos.append(jnp.pad(s.positions, ((0, pad), (0, 0))))
        amp.append(jnp.pad(s.amplitudes, ((0, pad), (0, 0))))
        var.append(jnp.pad(s.variances, ((0, pad), (0, 0)), constant_values=1.0))
    return GaussianAtoms(jnp.stack(pos), jnp.stack(amp), jnp.stack(var))


# -- the per-batch computation ------------------------------------------------------------------
def _masks(opts: LikelihoodConfig, rotations, shifts, n: int, dtype):
    b = rotations.shape[0]
    base = jnp.ones((n, n), dtype) if opts.mask is None else opts.mask.astype(dtype)
    mask3d = opts.mask3d
    if mask3d is None:
        return jnp.broadcast_to(base, (b, n, n))
    proj = jax.vmap(lambda r, o: project_map(mask3d, r, o, n))(rotations, shifts)
    return (proj > opts.mask3d_threshold * mask3d.voxel_size).astype(dtype) * base


def _whiten_each(image: Array, psd: Array) -> Array:
    return ColoredGaussianNoise(psd).whiten(image)


def _per_particle_pair_function(opts: LikelihoodConfig, images, masks, psds):
    """As :func:`_pair_function` with one PSD per particle (a data term like the image)."""
    if not opts.marginal:
        return (lambda x, yi, mi, pi: ColoredGaussianNoise(pi).log_likelihood(yi, x, mi)), (
            images,
            masks,
            psds,
        )
    yc, n_pix = jax.vmap(lambda y, m, p: centre_in_mask(_whiten_each(y, p), m))(images, masks, psds)

    def marginal(x, yci, mi, npix, pi):
        xc = centre_in_mask(_whiten_each(x, pi), mi)[0]
        return marginal_from_centred(xc, yci, npix, opts.exact)

    return marginal, (yc, masks, n_pix, psds)


def _pair_function(opts: LikelihoodConfig, images: Array, masks: Array, psds: Array | None):
    """The (model image, data terms...) -> log-likelihood function of one pair, and the data
    terms of every particle (computed once, shared by all structures)."""
    if psds is not None:
        return _per_particle_pair_function(opts, images, masks, psds)
    noise = opts.noise_model
    if not opts.marginal and noise is not None:
        return (lambda x, yi, mi: noise.log_likelihood(yi, x, mi)), (images, masks)
    whiten = (lambda im: im) if noise is None else noise.whiten
    yc, n_pix = jax.vmap(centre_in_mask)(whiten(images), masks)

    def marginal(x, yci, mi, npix):
        return marginal_from_centred(centre_in_mask(whiten(x), mi)[0], yci, npix, opts.exact)

    return marginal, (yc, masks, n_pix)


def batch_log_likelihoods(
    stacked: GaussianAtoms,
    images: Float[ArrayLike, "b n n"],
    rotations: Float[ArrayLike, "b 3 3"],
    shifts: Float[ArrayLike, "b 2"],
    ctf: CTFParams,
    opts: LikelihoodConfig,
    config: ImagingConfig,
    indices: Int[ArrayLike, " b"] | None = None,
) -> Float[Array, "b M"]:
    """(b, M) log-likelihoods of a batch of particles against the stacked structures.

    Data-image terms (whitening, centring) are computed once per particle; with per-particle
    noise spectra each particle's PSD is formed here, so memory stays bounded by the batch.
    Jit-compile the caller.

    Arguments:
        stacked: M structures stacked by :func:`stack_structures`.
        images: (b, n, n) particle images.
        rotations: (b, 3, 3) RELION rotation matrices.
        shifts: (b, 2) RELION origins (rlnOriginX/YAngst) in Angstrom.
        ctf: batched :class:`~cryoensemble.optics.CTFParams`.
        opts: the likelihood.
        config: the imaging settings (box = image side).
        indices: (b,) 0-based particle indices in the dataset (needed by ``opts.spectra``).
    """
    images = jnp.asarray(images)
    n = config.box_size
    masks = _masks(opts, rotations, shifts, n, images.dtype)
    psds = opts.particle_psds(indices)
    pair, data = _pair_function(opts, images, masks, psds)

    def per_structure(atoms):
        x = simulate_images(atoms, rotations, shifts, ctf, config)
        return jax.vmap(pair)(x, *data)

    return jax.lax.map(per_structure, stacked).T  # (b, M)


@eqx.filter_jit
def _batch_single(stacked, images, rotations, shifts, ctf, indices, opts, config):
    return batch_log_likelihoods(stacked, images, rotations, shifts, ctf, opts, config, indices)


def _make_sharded(mesh: Mesh, config):
    """A jitted, shard_map-ped batch function for ``mesh`` (particle axis split)."""

    def fn(stacked, images, rotations, shifts, ctf, indices, opts):
        return batch_log_likelihoods(stacked, images, rotations, shifts, ctf, opts, config, indices)

    part = P(PARTICLE_AXIS)
    mapped = jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=(P(), part, part, part, part, part, P()),
        out_specs=part,
        check_vma=False,
    )
    return eqx.filter_jit(mapped)


# -- drivers --------------------------------------------------------------------------------------
def _prepare(structures, config, opts, n_box, n_particles):
    if isinstance(structures, GaussianAtoms):
        structures = [structures]
    structures = list(structures)
    stacked = stack_structures(structures)
    if config.box_size != n_box:
        raise InputError(
            f"the imaging config has a box of {config.box_size} pixels but the images are "
            f"{n_box} x {n_box}"
        )
    if opts.mask is not None and tuple(opts.mask.shape) != (n_box, n_box):
        raise InputError(f"mask shape {tuple(opts.mask.shape)} differs from the images ({n_box})")
    if opts.psd is not None and tuple(opts.psd.shape) != (n_box, n_box // 2 + 1):
        raise InputError(
            f"noise PSD shape {tuple(opts.psd.shape)} does not match the image size "
            f"{n_box} (expected {(n_box, n_box // 2 + 1)})"
        )
    _check_spectra(opts.spectra, n_box, n_particles)
    return stacked, len(structures)


def _check_spectra(spectra: NoiseSpectra | None, n_box: int, n_particles: int) -> None:
    if spectra is None:
        return
    if spectra.box_size != n_box:
        raise InputError(
            f"the noise spectra are for {spectra.box_size}-pixel images, the particles are {n_box}"
        )
    if len(spectra) != n_particles:
        raise InputError(
            f"the noise spectra cover {len(spectra)} particles, the dataset has {n_particles}"
        )


def _runner(mesh: Mesh | None, config, opts):
    if mesh is None or mesh.size == 1:
        return lambda stacked, batch: _batch_single(
            stacked, batch[0], batch[1], batch[2], batch[3], batch[4], opts, config
        )
    fn = _make_sharded(mesh, config)
    sharding = NamedSharding(mesh, P(PARTICLE_AXIS))
    replicated = NamedSharding(mesh, P())

    opts_r = jax.device_put(opts, replicated)
    placed: dict = {}  # the structures are copied to the devices once, not for every batch

    def run(stacked, batch):
        if placed.get("key") is not stacked:
            placed.update(key=stacked, value=jax.device_put(stacked, replicated))
        # Every leaf gets the particle axis (scalar CTF fields are broadcast) before splitting.
        b = batch[0].shape[0]
        batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (b, *jnp.shape(x)[1:])), batch)
        return fn(placed["value"], *jax.device_put(batch, sharding), opts_r)

    return run


def _gather(rows: np.ndarray, idx: np.ndarray, n_total: int, n_struct: int, out: np.ndarray):
    """Fill ``out`` from every process's (rows, idx) (identity with one process)."""
    if jax.process_count() == 1:
        out[idx] = rows
        return out
    counts = multihost_utils.process_allgather(np.array([len(idx)]))
    m = int(np.max(counts))
    pad_rows = np.zeros((m, n_struct), rows.dtype)
    pad_rows[: len(idx)] = rows
    pad_idx = np.full(m, -1, np.int64)
    pad_idx[: len(idx)] = idx
    all_rows = np.asarray(multihost_utils.process_allgather(pad_rows)).reshape(-1, n_struct)
    all_idx = np.asarray(multihost_utils.process_allgather(pad_idx)).reshape(-1)
    keep = all_idx >= 0
    out[all_idx[keep]] = all_rows[keep]
    return out


def likelihood_matrix(
    dataset: AbstractParticles,
    structures: Sequence[GaussianAtoms] | GaussianAtoms,
    config: ImagingConfig,
    kind: str = "marginal",
    *,
    options: LikelihoodConfig | None = None,
    sigma: float | None = None,
    psd: Float[ArrayLike, "n m"] | None = None,
    mask: ArrayLike | None = None,
    exact: bool = True,
    batch_size: int = 128,
    indices: ArrayLike | Sequence[int] | None = None,
    mesh: Mesh | None = None,
    progress: AbstractProgressMeter = NoProgressMeter(),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """L (n_particles, n_structures) float32: log p(image n | structure m).

    Memory: one batch of images plus the (n, M) result.

    Arguments:
        dataset: the particles (:class:`~cryoensemble.imaging.AbstractParticles`, e.g. a
            :class:`~cryoensemble.io.ParticleDataset`).
        structures: the M structures (or one).
        config: the imaging settings; its box must equal the images'.
        kind, sigma, psd, mask, exact: build the likelihood when ``options`` is None (see
            :class:`LikelihoodConfig`; per-particle noise spectra go through ``options``).
        options: the likelihood.
        batch_size: particles per compiled batch.
        indices: 0-based particles to use, in that order (default: all).
        mesh: a 1-D "particles" mesh to shard over (default: all local devices when there are
            several; pass ``particle_mesh(jax.local_devices()[:1])`` to force one device).
        progress: reports the particles done (e.g. the command line's live bar).
        out: an (n, M) float32 array to fill and return (e.g. a memory-mapped ``.npy`` opened
            by the caller); default a new array.
    """
    if options is None:
        options = LikelihoodConfig(
            kind=kind, sigma=sigma, psd=_array_or_none(psd), mask=_array_or_none(mask), exact=exact
        )
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise InputError(f"batch size must be a positive integer, got {batch_size!r}")
    n_total = len(dataset)
    if n_total == 0:
        raise InputError(f"{getattr(dataset, 'star_path', 'dataset')}: no particles")
    idx_all = np.arange(n_total) if indices is None else np.asarray(indices, np.int64).reshape(-1)
    stacked, n_struct = _prepare(structures, config, options, dataset.box_size, n_total)
    if out is None:
        out = np.empty((len(idx_all), n_struct), np.float32)
    elif out.shape != (len(idx_all), n_struct):
        raise InputError(f"output array of shape {out.shape}, need {(len(idx_all), n_struct)}")
    if mesh is None and len(jax.local_devices()) > 1:
        mesh = particle_mesh()
    n_dev = 1 if mesh is None else mesh.size
    batch_size = min(int(batch_size), len(idx_all))  # never pad beyond the data
    pad_to = -(-int(batch_size) // n_dev) * n_dev
    run = _runner(mesh, config, options)

    bs = int(batch_size)
    starts = list(range(0, len(idx_all), bs))[jax.process_index() :: jax.process_count()]
    mine = [(s, idx_all[s : s + bs]) for s in starts]
    n_mine = sum(len(b) for _, b in mine)
    local_rows = np.empty((n_mine, n_struct), np.float32)
    local_idx = np.empty(n_mine, np.int64)
    meter = progress if jax.process_index() == 0 else NoProgressMeter()
    t0 = time.perf_counter()
    pos = 0
    with meter.task("likelihood matrix", total=n_mine, unit="particles") as task:
        for start, b in mine:
            batch = dataset.batch(b, pad_to=pad_to)
            args = (batch.images, batch.rotations, batch.shifts, batch.ctf, batch.indices)
            vals = np.asarray(run(stacked, args))[: len(b)]
            _check_finite(vals, b)
            local_rows[pos : pos + len(b)] = vals
            local_idx[pos : pos + len(b)] = np.arange(start, start + len(b))
            pos += len(b)
            rate = pos / max(time.perf_counter() - t0, 1e-9)
            task.advance(len(b), rate=f"{rate:,.1f} particles/s")
    return _gather(local_rows, local_idx, len(idx_all), n_struct, out)


def _array_or_none(a: ArrayLike | None) -> Array | None:
    return None if a is None else jnp.asarray(a)


def _check_finite(vals: np.ndarray, indices: np.ndarray) -> None:
    if not np.all(np.isfinite(vals)):
        bad = int(indices[np.flatnonzero(~np.isfinite(vals).all(axis=1))[0]])
        raise InputError(
            f"non-finite log-likelihood for particle {bad} (0-based): check the image "
            "(constant or NaN pixels?) and the likelihood options"
        )


def likelihood_matrix_arrays(
    images: Float[ArrayLike, "n N N"],
    rotations: Float[ArrayLike, "n 3 3"],
    shifts: Float[ArrayLike, "n 2"],
    ctf: CTFParams,
    structures: Sequence[GaussianAtoms] | GaussianAtoms,
    config: ImagingConfig,
    options: LikelihoodConfig,
    batch_size: int = 128,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """Like :func:`likelihood_matrix` for particles held in memory.

    Arguments:
        images: (n, N, N) particle images.
        rotations: (n, 3, 3) RELION rotation matrices.
        shifts: (n, 2) RELION origins in Angstrom.
        ctf: a batched :class:`~cryoensemble.optics.CTFParams`.
        structures, config, options, batch_size, mesh: as for :func:`likelihood_matrix`.
    """
    return likelihood_matrix(
        ArrayParticles(images, ctf, config.pixel_size, rotations, shifts),
        structures,
        config,
        options=options,
        batch_size=batch_size,
        mesh=mesh,
    )
