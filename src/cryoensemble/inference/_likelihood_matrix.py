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

import json
import time
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from cryoensemble.errors import InputError, check_positive
from cryoensemble.imaging._particles import ArrayParticles
from cryoensemble.imaging._pipeline import ImagingConfig, simulate_images
from cryoensemble.inference._likelihood import marginal_from_residual, whiten
from cryoensemble.parallel import PARTICLE_AXIS, particle_mesh
from cryoensemble.scattering._potential import GaussianAtoms

__all__ = [
    "KINDS",
    "LikelihoodOptions",
    "circular_mask_px",
    "likelihood_matrix",
    "likelihood_matrix_arrays",
    "load_likelihood_matrix",
    "particle_mesh",
    "save_likelihood_matrix",
    "stack_structures",
]

#: white: known sigma; marginal: scale/offset fitted, variance marginalised; colored: whiten with
#: the PSD then marginal; colored_white: whiten then white with sigma = 1 (absolute PSD).
KINDS = ("white", "marginal", "colored", "colored_white")


class LikelihoodOptions(eqx.Module):
    """What likelihood to evaluate (a pytree: arrays are leaves, the rest static).

    kind: one of :data:`KINDS`. sigma: the noise standard deviation (image units) for "white".
    psd: the noise PSD on the rfft grid (n, n // 2 + 1) for the coloured kinds.
    mask: an (n, n) 0/1 array (e.g. :func:`circular_mask_px`) or None for all pixels.
    mask3d: a :class:`~cryoensemble.projection.MapProjector` of a 3-D 0/1 mask (voxel = pixel,
    box = image box), projected at each particle's pose; pixels whose projection exceeds
    ``mask3d_threshold`` voxels of path length are kept (intersected with ``mask``).
    exact: the full marginal formula (True) or the reference -(N/2) log ||r||^2 (False).
    """

    kind: str = eqx.field(static=True, default="marginal")
    sigma: float | None = eqx.field(static=True, default=None)
    psd: jax.Array | None = None
    mask: jax.Array | None = None
    mask3d: object | None = None
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
        if self.kind.startswith("colored") and self.psd is None:
            raise InputError(f"the {self.kind} likelihood needs a noise power spectrum (psd)")


def circular_mask_px(n: int, radius_px: float) -> jax.Array:
    """0/1 float32 disc of radius ``radius_px`` pixels centred at pixel (n // 2, n // 2)."""
    check_positive("mask radius (pixels)", radius_px)
    c = np.arange(n) - n // 2
    return jnp.asarray((c[:, None] ** 2 + c[None, :] ** 2) <= radius_px**2, jnp.float32)


def stack_structures(structures: Sequence[GaussianAtoms]) -> GaussianAtoms:
    """Stack structures along a leading axis, padding to a common atom count with atoms of zero
    amplitude (which contribute nothing to any image)."""
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
def _masks(opts: LikelihoodOptions, rotations, shifts, n: int, dtype):
    b = rotations.shape[0]
    base = jnp.ones((n, n), dtype) if opts.mask is None else opts.mask.astype(dtype)
    if opts.mask3d is None:
        return jnp.broadcast_to(base, (b, n, n))
    from cryoensemble.projection._maps import project_map

    v = opts.mask3d.voxel_size
    proj = jax.vmap(lambda r, o: project_map(opts.mask3d, r, o, n))(rotations, shifts)
    return (proj > opts.mask3d_threshold * v).astype(dtype) * base


def batch_log_likelihoods(stacked: GaussianAtoms, images, rotations, shifts, ctf, opts, config):
    """(b, M) log-likelihoods of a batch of particles against the stacked structures."""
    n = config.box_size
    dtype = images.dtype
    masks = _masks(opts, rotations, shifts, n, dtype)
    n_pix = jnp.sum(masks, axis=(-2, -1))  # (b,)
    colored = opts.kind.startswith("colored")
    marginal = opts.kind in ("marginal", "colored")
    y = jax.vmap(lambda im: whiten(im, opts.psd))(images) if colored else images
    if marginal:
        ybar = jnp.sum(masks * y, axis=(-2, -1)) / n_pix
        yc = masks * (y - ybar[:, None, None])
    sigma = 1.0 if opts.kind == "colored_white" else opts.sigma

    def pair(x, yi, yci, mi, npix):
        if colored:
            x = whiten(x, opts.psd)
        if not marginal:
            chi2 = jnp.sum(mi * (yi - x) ** 2)
            return -0.5 * chi2 / sigma**2 - 0.5 * npix * jnp.log(2 * jnp.pi * sigma**2)
        xbar = jnp.sum(mi * x) / npix
        xc = mi * (x - xbar)
        vxx = jnp.sum(xc * xc)
        vxy = jnp.sum(xc * yci)
        safe = vxx > 0
        s = jnp.where(safe, vxy / jnp.where(safe, vxx, 1.0), 0.0)
        r = yci - s * xc
        return marginal_from_residual(jnp.sum(r * r), npix, npix * vxx, opts.exact)

    yc_arg = yc if marginal else y

    def per_structure(atoms):
        x = simulate_images(atoms, rotations, shifts, ctf, config)
        return jax.vmap(pair)(x, y, yc_arg, masks, n_pix)

    return jax.lax.map(per_structure, stacked).T  # (b, M)


@eqx.filter_jit
def _batch_single(stacked, images, rotations, shifts, ctf, opts, config):
    return batch_log_likelihoods(stacked, images, rotations, shifts, ctf, opts, config)


def _make_sharded(mesh: Mesh, config, opts_static):
    """A jitted, shard_map-ped batch function for ``mesh`` (particle axis split)."""

    def fn(stacked, images, rotations, shifts, ctf, opts):
        return batch_log_likelihoods(stacked, images, rotations, shifts, ctf, opts, config)

    part = P(PARTICLE_AXIS)
    mapped = jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=(P(), part, part, part, part, P()),
        out_specs=part,
        check_vma=False,
    )
    return eqx.filter_jit(mapped)


# -- drivers --------------------------------------------------------------------------------------
def _progress(total: int, enabled: bool, description: str = "likelihood matrix"):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("particles"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
    task = progress.add_task(description, total=total, rate="")
    return progress, task


def _prepare(structures, config, opts, n_box):
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
    return stacked, len(structures)


def _runner(mesh: Mesh | None, config, opts):
    if mesh is None or mesh.size == 1:
        return lambda stacked, batch: _batch_single(
            stacked, batch[0], batch[1], batch[2], batch[3], opts, config
        )
    fn = _make_sharded(mesh, config, opts)
    sharding = NamedSharding(mesh, P(PARTICLE_AXIS))
    replicated = NamedSharding(mesh, P())

    opts_r = jax.device_put(opts, replicated)
    placed = {}  # the structures are copied to the devices once, not for every batch

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
    from jax.experimental import multihost_utils

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
    dataset,
    structures: Sequence[GaussianAtoms],
    config: ImagingConfig,
    kind: str = "marginal",
    *,
    options: LikelihoodOptions | None = None,
    sigma: float | None = None,
    psd=None,
    mask=None,
    exact: bool = True,
    batch_size: int = 128,
    indices=None,
    mesh: Mesh | None = None,
    progress: bool = True,
    out_path: str | Path | None = None,
) -> np.ndarray:
    """L (n_particles, n_structures) float32 for the particles of ``dataset`` (all, or
    ``indices`` in that order) against ``structures`` imaged with ``config``.

    ``dataset`` is a :class:`~cryoensemble.io.ParticleDataset` (anything with ``box_size``,
    ``__len__`` and ``batch(indices, pad_to=...)``). The likelihood is ``options`` or is built
    from ``kind``, ``sigma``, ``psd``, ``mask``, ``exact`` (see :class:`LikelihoodOptions`).
    ``mesh``: a 1-D "particles" mesh to shard over (default: all local devices when there are
    several; pass ``particle_mesh(jax.local_devices()[:1])`` to force one device). Memory: one
    batch of images plus the (n, M) result, which is a memory-mapped ``.npy`` at ``out_path``
    when given (see :func:`save_likelihood_matrix` for the saved format).
    """
    if options is None:
        options = LikelihoodOptions(kind=kind, sigma=sigma, psd=psd, mask=mask, exact=exact)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise InputError(f"batch size must be a positive integer, got {batch_size!r}")
    n_total = len(dataset)
    if n_total == 0:
        raise InputError(f"{getattr(dataset, 'star_path', 'dataset')}: no particles")
    idx_all = np.arange(n_total) if indices is None else np.asarray(indices, np.int64).reshape(-1)
    stacked, n_struct = _prepare(structures, config, options, dataset.box_size)
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
    bar, task = _progress(n_mine, progress and jax.process_index() == 0)
    t0 = time.perf_counter()
    pos = 0
    with bar:
        for start, b in mine:
            batch = dataset.batch(b, pad_to=pad_to)
            args = (batch.images, batch.rotations, batch.shifts, batch.ctf)
            vals = np.asarray(run(stacked, args))[: len(b)]
            if not np.all(np.isfinite(vals)):
                bad = int(b[np.flatnonzero(~np.isfinite(vals).all(axis=1))[0]])
                raise InputError(
                    f"non-finite log-likelihood for particle {bad} (0-based): check the image "
                    "(constant or NaN pixels?) and the likelihood options"
                )
            local_rows[pos : pos + len(b)] = vals
            local_idx[pos : pos + len(b)] = np.arange(start, start + len(b))
            pos += len(b)
            rate = pos / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=len(b), rate=f"{rate:,.1f} particles/s")

    if out_path is not None:
        out = np.lib.format.open_memmap(
            Path(out_path), mode="w+", dtype=np.float32, shape=(len(idx_all), n_struct)
        )
    else:
        out = np.empty((len(idx_all), n_struct), np.float32)
    out = _gather(local_rows, local_idx, len(idx_all), n_struct, out)
    if isinstance(out, np.memmap):
        out.flush()
    return out


def likelihood_matrix_arrays(
    images,
    rotations,
    shifts,
    ctf,
    structures: Sequence[GaussianAtoms],
    config: ImagingConfig,
    options: LikelihoodOptions,
    batch_size: int = 128,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """Like :func:`likelihood_matrix` for in-memory arrays (images (n, N, N), rotations
    (n, 3, 3), shifts (n, 2), a batched :class:`~cryoensemble.optics.CTFParams`)."""
    return likelihood_matrix(
        ArrayParticles(images, ctf, config.pixel_size, rotations, shifts),
        structures,
        config,
        options=options,
        batch_size=batch_size,
        mesh=mesh,
        progress=False,
    )


# -- saving ---------------------------------------------------------------------------------------
def save_likelihood_matrix(folder, L, indices=None, meta: dict | None = None) -> Path:
    """Write ``likelihood_matrix.npy`` (n, M) float32, ``particle_indices.npy`` (n,) int64
    (0-based rows of the STAR file, row i of L is particle indices[i]) and
    ``likelihood_matrix.json`` (``meta``: kind, structure names, ...) into ``folder``."""
    folder = Path(folder)
    L = np.asarray(L, np.float32)
    idx = np.arange(L.shape[0]) if indices is None else np.asarray(indices, np.int64)
    np.save(folder / "likelihood_matrix.npy", L)
    np.save(folder / "particle_indices.npy", idx)
    info = {"shape": list(L.shape), **(meta or {})}
    (folder / "likelihood_matrix.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return folder / "likelihood_matrix.npy"


def load_likelihood_matrix(path) -> tuple[np.ndarray, np.ndarray]:
    """(L, particle indices) from a folder written by :func:`save_likelihood_matrix` or an
    ``.npy`` file (indices default to 0 .. n-1)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    npy = folder / "likelihood_matrix.npy" if path.is_dir() else path
    if not npy.exists():
        raise InputError(f"{npy}: likelihood matrix not found")
    try:
        L = np.load(npy)
    except (ValueError, OSError) as err:
        raise InputError(f"{npy}: cannot read the likelihood matrix ({err})") from None
    if L.ndim != 2:
        raise InputError(f"{npy}: expected a 2-D (particles x structures) array, got {L.shape}")
    idx_path = folder / "particle_indices.npy"
    idx = np.load(idx_path) if idx_path.exists() else np.arange(L.shape[0])
    return L, idx
