"""The files of a simulated dataset: MRC stacks streamed by a background thread, the particle
STAR file, the ground truth table and the effective configuration.

* ``particles.star`` -- RELION 3.1 particle file (image names relative to the folder), with the
  ground truth in extra ``cryoensemble*`` columns (``cryoensembleStructureIndex``, 0-based, and
  ``cryoensembleStructureFile``, the structure file's base name);
* ``particles_00000.mrcs``, ... -- float32 MRC stacks of at most ``stack_size`` images each,
  written incrementally (memory does not grow with the number of particles);
* ``ground_truth.csv`` -- one row per particle: structure index and file, the true (imaged) Euler
  angles and shifts, CTF parameters, and the nuisances that are on: the poses written to the STAR
  file (``star_rot_deg``, ...), ``amplitude``, ``micrograph`` and ``noise_scale``, and the image
  map of inversion/normalisation (``image_scale``, ``image_offset``);
* ``config.yaml`` -- the effective configuration that reproduces the dataset.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from jaxtyping import Float

from cryoensemble.io import MrcStackWriter, write_particles
from cryoensemble.workflows.simulate._config import SimulateConfig
from cryoensemble.workflows.simulate._nuisances import (
    AMPLITUDE_COLUMN,
    MICROGRAPH_COLUMN,
    NOISE_SCALE_COLUMN,
    TRUE_POSE_COLUMNS,
    imaged_particles,
)
from cryoensemble.workflows.simulate._sampling import stack_name

__all__ = [
    "CONFIG_NAME",
    "GROUND_TRUTH_NAME",
    "STAR_NAME",
    "BackgroundWriter",
    "StackSink",
    "write_tables",
]

STAR_NAME = "particles.star"
GROUND_TRUTH_NAME = "ground_truth.csv"
CONFIG_NAME = "config.yaml"


class StackSink:
    """Routes consecutive images into ``particles_NNNNN.mrcs`` stacks of ``stack_size`` each.

    Arguments:
        folder: the dataset folder.
        n: total number of images.
        stack_size: images per stack.
        box: image side in pixels.
        pixel: pixel size in Angstrom (MRC header).
    """

    def __init__(self, folder: Path, n: int, stack_size: int, box: int, pixel: float) -> None:
        self.folder, self.n, self.stack_size = folder, n, stack_size
        self.box, self.pixel = box, pixel
        self.count = 0
        self.writer: MrcStackWriter | None = None
        self.names: list[str] = []

    def _open_next(self) -> MrcStackWriter:
        s = self.count // self.stack_size
        size = min(self.stack_size, self.n - s * self.stack_size)
        writer = MrcStackWriter(self.folder / stack_name(s), self.box, self.pixel, n_images=size)
        writer.open()
        self.names.append(stack_name(s))
        return writer

    def append(self, images: Float[np.ndarray, "k n n"]) -> None:
        """Write ``images`` (k, n, n) after the ones already written, opening stacks as needed."""
        start = 0
        while start < len(images):
            if self.writer is None:
                self.writer = self._open_next()
            take = min(self.writer.n_images - self.writer.count, len(images) - start)
            self.writer.append(images[start : start + take])
            start += take
            self.count += take
            if self.writer.count == self.writer.n_images:
                self.writer.close()
                self.writer = None

    def abort(self) -> None:
        """Remove the stack being written (finished stacks stay)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


class BackgroundWriter:
    """Writes batches into a :class:`StackSink` in a thread (overlapping disk writes with the
    simulation); at most ``depth`` batches queued.

    An exception in the thread is re-raised in the caller at the next :meth:`put` or at
    :meth:`finish`.
    """

    def __init__(self, sink: StackSink, depth: int = 2) -> None:
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="cryoensemble-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                self.sink.append(item)
            except BaseException as err:  # re-raised in the main thread
                self.error = err

    def _raise(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def put(self, images: Float[np.ndarray, "k n n"]) -> None:
        """Queue ``images`` (k, n, n) for writing (blocks while ``depth`` batches wait)."""
        self._raise()
        self.queue.put(images)

    def finish(self) -> None:
        """Wait until everything queued is written; re-raise the thread's error."""
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def stop(self) -> None:
        """Stop after an error in the caller (queued batches are discarded)."""
        if self.thread.is_alive():
            self.error = self.error or RuntimeError("stopped")
            self.queue.put(None)
            self.thread.join()


def _write_ground_truth(
    path: Path, particles: pd.DataFrame, image_map: tuple[np.ndarray, np.ndarray] | None
) -> None:
    truth = imaged_particles(particles)  # the imaged (true) poses
    cols = {
        "particle": np.arange(len(particles)),
        "image_name": particles["rlnImageName"],
        "structure_index": particles["cryoensembleStructureIndex"],
        "structure_file": particles["cryoensembleStructureFile"],
    }
    for star, name in _POSE_NAMES.items():
        cols[name] = truth[star]
    cols.update(
        defocus_u_A=particles["rlnDefocusU"],
        defocus_v_A=particles["rlnDefocusV"],
        defocus_angle_deg=particles["rlnDefocusAngle"],
    )
    if TRUE_POSE_COLUMNS["rlnAngleRot"] in particles.columns:
        cols.update({f"star_{name}": particles[star] for star, name in _POSE_NAMES.items()})
    for column, name in _NUISANCE_NAMES.items():
        if column in particles.columns:
            cols[name] = particles[column]
    if image_map is not None:
        cols["image_scale"], cols["image_offset"] = image_map
    pd.DataFrame(cols).to_csv(path, index=False)


_POSE_NAMES = {
    "rlnAngleRot": "rot_deg",
    "rlnAngleTilt": "tilt_deg",
    "rlnAnglePsi": "psi_deg",
    "rlnOriginXAngst": "shift_x_A",
    "rlnOriginYAngst": "shift_y_A",
}
_NUISANCE_NAMES = {
    AMPLITUDE_COLUMN: "amplitude",
    MICROGRAPH_COLUMN: "micrograph",
    NOISE_SCALE_COLUMN: "noise_scale",
}


def write_tables(
    folder: Path,
    resolved: SimulateConfig,
    optics: pd.DataFrame,
    particles: pd.DataFrame,
    image_map: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write ``particles.star``, ``ground_truth.csv`` and ``config.yaml`` into ``folder``.

    Arguments:
        folder: the dataset folder.
        resolved: the resolved configuration (written as ``config.yaml``).
        optics: the optics table.
        particles: the particle table.
        image_map: each particle's (scale, offset) of the contrast inversion and normalisation
            (written image = scale * phase contrast + offset), for the ground truth; None: off.

    Returns:
        the path of ``particles.star``.
    """
    star = folder / STAR_NAME
    write_particles(star, (optics, particles))
    _write_ground_truth(folder / GROUND_TRUTH_NAME, particles, image_map)
    (folder / CONFIG_NAME).write_text(
        "# Effective configuration of this dataset (cryoensemble simulate --config "
        f"{CONFIG_NAME} reproduces it)\n" + yaml.safe_dump(resolved.to_dict(), sort_keys=False)
    )
    return star
