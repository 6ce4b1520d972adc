"""A lazy particle dataset: a RELION STAR file plus its memory-mapped MRC stacks.

Relative image paths (``rlnImageName = NNNNNN@path``) are resolved as RELION does: relative to
the current working directory first (at the time the dataset is created), then, if not found
there, relative to the directory of the STAR file. Every referenced stack is validated up front
from its MRC header only (exists, not truncated, square images of size rlnImageSize, every index
within the stack), so errors surface before any computation starts.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from cryoensemble.errors import InputError
from cryoensemble.imaging._particles import AbstractParticles, ParticleBatch
from cryoensemble.io._mrc import MrcHeaderInfo, read_header
from cryoensemble.io._star import (
    ParticleTable,
    arrays_from_columns,
    particle_columns,
    read_particles,
    resolve_image_path,
)

__all__ = ["ParticleDataset"]


class ParticleDataset(AbstractParticles):
    """Particles of a STAR file, images read lazily from memory-mapped MRC stacks.

    ``len(ds)`` particles of ``ds.box_size`` pixels at ``ds.pixel_size`` Angstrom (one pixel size
    and box size per dataset; several optics groups are fine if they agree). With
    ``invert_contrast=True`` every image is multiplied by -1.
    """

    def __init__(self, star_path, invert_contrast: bool = False, require_poses: bool = False):
        self.star_path = Path(star_path).absolute()
        self.invert_contrast = bool(invert_contrast)
        self.table: ParticleTable = read_particles(self.star_path, require_poses=require_poses)
        src = str(self.star_path)
        optics, particles = self.table.optics, self.table.particles
        rows = self.table.optics_rows()
        used = np.unique(rows)

        # one pixel size and one box size per dataset
        px = optics["rlnImagePixelSize"].to_numpy(np.float64)[used]
        if np.ptp(px) > 1e-6 * px.max():
            groups = optics["rlnOpticsGroup"].to_numpy()[used]
            desc = ", ".join(f"group {g}: {p:g} A" for g, p in zip(groups, px, strict=True))
            raise InputError(
                f"{src}: optics groups have different rlnImagePixelSize ({desc}); a dataset "
                "supports a single pixel size"
            )
        sizes = optics["rlnImageSize"].to_numpy(np.int64)[used]
        if len(np.unique(sizes)) > 1:
            raise InputError(
                f"{src}: optics groups have different rlnImageSize ({sorted(set(sizes))}); "
                "a dataset supports a single box size"
            )
        self.pixel_size = float(px[0])
        self.box_size = int(sizes[0])

        # resolve and validate every stack from its header
        index1, stack_names = self.table.image_locations()
        unique_names, stack_id = np.unique(np.array(stack_names, dtype=object), return_inverse=True)
        self._stack_id = stack_id.astype(np.int64)
        self._image0 = index1 - 1
        self._stacks: list[MrcHeaderInfo] = []
        for s, name in enumerate(unique_names):
            members = np.flatnonzero(self._stack_id == s)
            first = int(members[0])
            resolved = resolve_image_path(name, self.star_path)
            if not resolved.exists():
                raise InputError(
                    f"{src}: column rlnImageName, row {first + 1} "
                    f"({particles['rlnImageName'].iloc[first]!r}): stack {name} not found "
                    f"(looked in the working directory {Path.cwd()} and next to the STAR file "
                    f"in {self.star_path.parent})"
                )
            info = read_header(resolved)
            if (info.nx, info.ny) != (self.box_size, self.box_size):
                raise InputError(
                    f"{resolved}: images are {info.nx} x {info.ny} pixels but rlnImageSize in "
                    f"{src} is {self.box_size}"
                )
            worst = members[np.argmax(self._image0[members])]
            if self._image0[worst] >= info.n_images:
                raise InputError(
                    f"{src}: column rlnImageName, row {int(worst) + 1} "
                    f"({particles['rlnImageName'].iloc[worst]!r}): image {int(index1[worst])} "
                    f"(1-based) is beyond the end of {resolved}, which holds {info.n_images} "
                    "images"
                )
            self._stacks.append(info)
        self._columns = particle_columns(self.table)

    # -- basic properties ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return (
            f"ParticleDataset({str(self.star_path)!r}, n={len(self)}, box={self.box_size}, "
            f"pixel_size={self.pixel_size:g})"
        )

    @property
    def stack_paths(self) -> list[Path]:
        """Resolved paths of the stacks, in the order of their first reference."""
        return [s.path for s in self._stacks]

    # -- reading ---------------------------------------------------------------------------------
    def _check_indices(self, indices) -> np.ndarray:
        arr = np.asarray(indices)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise InputError(
                f"{self.star_path}: particle indices must be integers, got {arr.dtype}"
            )
        idx = arr.astype(np.int64).reshape(-1)
        bad = (idx < 0) | (idx >= len(self))
        if bad.any():
            raise InputError(
                f"{self.star_path}: particle index {int(idx[bad][0])} out of range [0, {len(self)})"
            )
        return idx

    def read_images(self, indices) -> np.ndarray:
        """Images (b, N, N) float32 of the particles ``indices`` (0-based), in that order."""
        idx = self._check_indices(indices)
        n = self.box_size
        out = np.empty((len(idx), n, n), dtype=np.float32)
        if len(idx) == 0:
            return out
        sid = self._stack_id[idx]
        img = self._image0[idx]
        order = np.lexsort((img, sid))  # by stack, then by position in the stack
        bounds = np.flatnonzero(np.diff(sid[order])) + 1
        for group in np.split(order, bounds):
            info = self._stacks[int(sid[group[0]])]
            mm = np.memmap(
                info.path,
                dtype=info.dtype,
                mode="r",
                offset=info.offset,
                shape=(info.nz, info.ny, info.nx),
            )
            out[group] = mm[img[group]]
            del mm
        if self.invert_contrast:
            np.negative(out, out=out)
        return out

    def batch(self, indices, pad_to: int | None = None) -> ParticleBatch:
        """The particles ``indices`` (0-based) as a :class:`ParticleBatch`.

        With ``pad_to``, the batch is padded to that size with copies of its last particle,
        marked ``valid = 0``, so jitted consumers always see the same shape.
        """
        idx = self._check_indices(indices)
        b = len(idx)
        valid = np.ones(b, dtype=np.float32)
        if pad_to is not None:
            if int(pad_to) != pad_to or pad_to < 1:
                raise InputError(f"pad_to must be a positive integer, got {pad_to!r}")
            if b > pad_to:
                raise InputError(f"batch of {b} particles is larger than pad_to = {pad_to}")
            if b == 0:
                raise InputError("cannot pad an empty batch (no particle to copy)")
            idx = np.concatenate([idx, np.full(int(pad_to) - b, idx[-1], dtype=np.int64)])
            valid = np.concatenate([valid, np.zeros(int(pad_to) - b, dtype=np.float32)])
        images = self.read_images(idx)
        arrays = arrays_from_columns(self._columns, idx)
        return ParticleBatch(
            images=jnp.asarray(images),
            rotations=arrays["rotations"],
            shifts=arrays["shifts"],
            ctf=arrays["ctf"],
            indices=jnp.asarray(idx, dtype=jnp.int32),
            valid=jnp.asarray(valid),
        )
