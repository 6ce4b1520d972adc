"""Simulating a dataset into an output folder: resolve the configuration, stream the images into
MRC stacks, write the tables, the gallery, ``summary.json`` and ``provenance.json``.

Everything is written into a hidden temporary folder next to ``out`` that replaces it only when
the whole dataset is complete (:func:`cryoensemble.io._outputs.atomic_output_dir`): an error or
Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import yaml
from jaxtyping import Float

from cryoensemble.errors import InputError
from cryoensemble.io import ParticleTable, particle_arrays, read_particles
from cryoensemble.io._config import validate_config
from cryoensemble.io._outputs import atomic_output_dir, write_provenance
from cryoensemble.parallel import particle_mesh
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.scattering import GaussianAtoms
from cryoensemble.workflows.simulate._config import SimulateConfig
from cryoensemble.workflows.simulate._images import NoiseLevels, iter_images, load_atoms
from cryoensemble.workflows.simulate._plots import save_gallery
from cryoensemble.workflows.simulate._sampling import resolve_config
from cryoensemble.workflows.simulate._summary import SimulateSummary
from cryoensemble.workflows.simulate._writers import (
    CONFIG_NAME,
    STAR_NAME,
    BackgroundWriter,
    StackSink,
    write_tables,
)

__all__ = ["regenerate_images", "run"]

GALLERY_NAME = "gallery.png"
N_GALLERY = 8


@dataclasses.dataclass
class _Streamed:
    """What streaming the images leaves: stack names, noise levels, gallery images and each
    particle's image scale and offset (contrast inversion and normalisation)."""

    stacks: list[str]
    noise: NoiseLevels | None
    gallery: tuple[np.ndarray, np.ndarray]
    image_scale: np.ndarray
    image_offset: np.ndarray


def _stream(
    folder: Path,
    resolved: SimulateConfig,
    tables: tuple[pd.DataFrame, pd.DataFrame],
    atoms: list[GaussianAtoms],
    mesh,
    progress: AbstractProgressMeter,
) -> _Streamed:
    """Simulate and write the stacks."""
    n = len(tables[1])
    sink = StackSink(folder, n, int(resolved.stack_size), resolved.box_size, resolved.pixel_size)
    writer = BackgroundWriter(sink)
    levels, gallery = None, None
    scale, offset = np.ones(n, np.float32), np.zeros(n, np.float32)
    t0 = time.perf_counter()
    try:
        with progress.task("simulating", total=n, unit="images") as task:
            for batch in iter_images(resolved, *tables, atoms, mesh):
                idx = batch.indices
                levels = batch.noise  # the dataset's one level (None unless gaussian)
                if gallery is None:
                    gallery = (batch.clean[:N_GALLERY].copy(), batch.noisy[:N_GALLERY].copy())
                scale[idx], offset[idx] = batch.image_scale, batch.image_offset
                writer.put(batch.noisy)
                rate = (int(idx[-1]) + 1) / (time.perf_counter() - t0)
                task.advance(len(idx), rate=f"{rate:,.0f} images/s")
        writer.finish()
    except BaseException:
        writer.stop()
        sink.abort()
        raise
    assert gallery is not None  # at least one particle
    return _Streamed(sink.names, levels, gallery, scale, offset)


def _gallery(folder: Path, resolved: SimulateConfig, optics, particles, images) -> None:
    ctf0 = None
    if resolved.apply_ctf:
        ctf = particle_arrays(ParticleTable(optics=optics, particles=particles, path=None), [0])
        ctf0 = jax.tree.map(lambda x: x[0], ctf["ctf"])
    n, box, px = len(particles), resolved.box_size, resolved.pixel_size
    title = f"{n} particles, {box} x {box} px at {px:g} A, noise {resolved.noise}"
    save_gallery(folder / GALLERY_NAME, *images, px, ctf0, title=title)


def _simulate_into(
    config: SimulateConfig, folder: Path, progress: AbstractProgressMeter, mesh
) -> SimulateSummary:
    t0 = time.perf_counter()
    resolved, optics, particles = resolve_config(config)
    atoms, centers = load_atoms(resolved)
    mesh = particle_mesh() if mesh is None else mesh
    streamed = _stream(folder, resolved, (optics, particles), atoms, mesh, progress)
    levels = streamed.noise
    image_map = None
    if resolved.normalize or resolved.invert_contrast:
        image_map = (streamed.image_scale, streamed.image_offset)
    star = write_tables(folder, resolved, optics, particles, image_map)
    if resolved.gallery:
        _gallery(folder, resolved, optics, particles, streamed.gallery)
    structure = particles["cryoensembleStructureIndex"].to_numpy(np.int64)
    elapsed = time.perf_counter() - t0
    summary = SimulateSummary(
        folder=folder,
        star_path=star,
        n_particles=len(particles),
        particles_per_structure=np.bincount(structure, minlength=len(atoms)).tolist(),
        stacks=streamed.stacks,
        box_size=int(resolved.box_size),
        pixel_size=float(resolved.pixel_size),
        noise=resolved.noise,
        noise_sigma=None if levels is None else levels.sigma,
        snr_mask_radius_px=resolved.mask_radius if resolved.noise == "gaussian" else None,
        structure_centers=[None if c is None else [float(x) for x in c] for c in centers],
        n_devices=int(mesh.devices.size),
        elapsed_s=elapsed,
        images_per_s=len(particles) / elapsed,
        config=resolved.to_dict(),
        noise_levels=None if levels is None else dataclasses.asdict(levels),
    )
    summary.write(folder)
    return summary


def run(
    config: SimulateConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: AbstractProgressMeter = NoProgressMeter(),
    mesh=None,
) -> SimulateSummary:
    """Simulate the dataset of ``config`` into the folder ``out`` (see ``docs/simulate.md``).

    Images are formed ``config.batch_size`` particles at a time and streamed into the stacks
    (written by a background thread, at most two batches queued), so memory does not depend on
    the number of particles. ``out`` appears whole or not at all.

    Arguments:
        config: the dataset's configuration.
        out: the output folder; it must not exist unless ``overwrite``.
        overwrite: replace an existing ``out``.
        progress: progress meter (one task, "simulating", counted in images).
        mesh: device mesh the particles are spread over (default
            :func:`cryoensemble.parallel.particle_mesh`: all devices).

    Returns:
        the :class:`SimulateSummary` (also written as ``summary.json``).
    """
    out = Path(out)
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        summary = _simulate_into(config, tmp, progress, mesh)
        write_provenance(tmp, "simulate", summary.config, summary.config["seed"])
    summary.folder = out
    summary.star_path = out / STAR_NAME
    return summary


def regenerate_images(
    folder: str | Path, mesh=None
) -> tuple[Float[np.ndarray, "n N N"], Float[np.ndarray, "n N N"]]:
    """Re-simulate a dataset written by :func:`run` from what is on disk.

    Reads ``config.yaml`` and the parameters of ``particles.star`` in ``folder``; the noisy images
    equal the ones in the stacks bit for bit (for checks of small datasets: all in memory).

    Arguments:
        folder: a simulated dataset's folder.
        mesh: device mesh (default all devices).

    Returns:
        ``(clean, noisy)`` float32 arrays (n, N, N) in the units of the stacks (phase contrast
        unless ``invert_contrast`` or ``normalize``; ``clean`` mapped like ``noisy``).
    """
    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path}: not found (not a cryoensemble simulation folder?)")
    resolved = validate_config(SimulateConfig, yaml.safe_load(cfg_path.read_text()), str(cfg_path))
    table = read_particles(folder / STAR_NAME)
    atoms, _ = load_atoms(resolved)
    mesh = particle_mesh() if mesh is None else mesh
    batches = list(iter_images(resolved, table.optics, table.particles, atoms, mesh))
    return np.concatenate([b.clean for b in batches]), np.concatenate([b.noisy for b in batches])
