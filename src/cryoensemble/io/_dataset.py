"""A lazy particle dataset: a RELION STAR (or cryoSPARC ``.cs``) file plus its memory-mapped MRC
stacks.

Relative image paths (``rlnImageName = NNNNNN@path``) are resolved as RELION does: relative to
the current working directory first (at the time the dataset is created), then, if not found
there, relative to the directory of the STAR file. Every referenced stack is validated up front
from its MRC header only (exists, not truncated, square images of size rlnImageSize, every index
within the stack), so errors surface before any computation starts.

A dataset may be read at a larger pixel size than the stored one (``pixel_size=`` /
``box_size=``): every image is Fourier-cropped as it is read, so that the images, ``pixel_size``
(which the CTF and the projections use) and the shifts (Angstrom, unchanged) agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, ArrayLike, Float, Float32

from cryoensemble.errors import InputError
from cryoensemble.imaging._particles import AbstractParticles, ParticleBatch, crop_geometry
from cryoensemble.io._cryosparc import read_cryosparc
from cryoensemble.io._mrc import MrcHeaderInfo, read_header
from cryoensemble.io._star import (
    ParticleTable,
    arrays_from_columns,
    particle_columns,
    read_particles,
    resolve_image_path,
)
from cryoensemble.ndimage import fourier_crop

__all__ = ["ParticleDataset"]

# Micrograph names that mean "no micrograph" (STAR/CIF null tokens, pandas' missing values).
_NO_MICROGRAPH = frozenset({"", ".", "?", "none", "nan", "null", '""', "''"})
# Optics that one exposure cannot have twice: a micrograph in several optics groups must agree.
_MICROGRAPH_OPTICS = ("rlnImagePixelSize", "rlnVoltage", "rlnSphericalAberration")
# One compiled crop per (batch shape, box): the box is static.
_fourier_crop_jit = jax.jit(fourier_crop, static_argnums=1)


class ParticleDataset(AbstractParticles):
    """Particles of a RELION STAR or cryoSPARC ``.cs`` file, images read lazily from
    memory-mapped MRC stacks.

    ``len(ds)`` particles of ``ds.box_size`` pixels at ``ds.pixel_size`` Angstrom (one pixel size
    and box size per dataset; several optics groups are fine if they agree). With ``pixel_size``
    or ``box_size`` the images are Fourier-cropped as they are read (downsampling only) and
    ``ds.pixel_size`` / ``ds.box_size`` are the cropped ones; ``ds.native_pixel_size`` /
    ``ds.native_box_size`` are those of the stacks. ``ds.table`` is the
    :class:`ParticleTable` in RELION conventions whatever the file type; ``ds.star_path`` is the
    particle file (STAR or ``.cs``).

    Arguments:
        star_path: a particle STAR file, or a cryoSPARC ``.cs`` file (chosen by the suffix).
        invert_contrast: multiply every image by -1.
        require_poses: the file must give poses (rlnAngleRot/Tilt/Psi, or alignments3D/*).
        project_dir: for a ``.cs`` file, the cryoSPARC project directory that ``blob/path`` is
            relative to (see :func:`read_cryosparc`); not allowed for a STAR file.
        pixel_size: read the images at this pixel size (Angstrom, at least the stored one;
            reached exactly by an even box); None: the stored pixel size or from ``box_size``.
        box_size: read the images Fourier-cropped to this even box (pixels, at most the
            stored one); None: the stored box or from ``pixel_size``.
    """

    def __init__(
        self,
        star_path: str | os.PathLike,
        invert_contrast: bool = False,
        require_poses: bool = False,
        project_dir: str | os.PathLike | None = None,
        pixel_size: float | None = None,
        box_size: int | None = None,
    ):
        self.star_path = Path(star_path).absolute()
        self.invert_contrast = bool(invert_contrast)
        self.table: ParticleTable = _read_table(self.star_path, require_poses, project_dir)
        self._is_cs = self.star_path.suffix.lower() == ".cs"
        _check_micrographs(self.table, self._is_cs)
        self.native_pixel_size, self.native_box_size = _single_pixel_and_box_size(self.table)
        self.box_size, self.pixel_size = crop_geometry(
            self.native_box_size, self.native_pixel_size, pixel_size, box_size, str(self.star_path)
        )
        index1, stack_names = self.table.image_locations()
        unique_names, stack_id = np.unique(np.array(stack_names, dtype=object), return_inverse=True)
        self._stack_id = stack_id.astype(np.int64)
        self._image0 = index1 - 1
        self._stacks: list[MrcHeaderInfo] = [
            self._check_stack(s, name, index1) for s, name in enumerate(unique_names)
        ]
        self._columns = particle_columns(self.table)

    def _field(self, star_column: str) -> str:
        """How the messages name a particle column: the STAR label or the ``.cs`` field."""
        if not self._is_cs:
            return f"column {star_column}"
        return {"rlnImageName": "field blob/path", "rlnImageSize": "field blob/shape"}[star_column]

    def _check_stack(self, s: int, name: str, index1: np.ndarray) -> MrcHeaderInfo:
        """Resolve stack ``s`` and validate it from its header: exists, box size, every index."""
        src = str(self.star_path)
        particles = self.table.particles
        members = np.flatnonzero(self._stack_id == s)
        first = int(members[0])
        resolved = resolve_image_path(name, self.star_path)
        if not resolved.exists():
            raise InputError(
                f"{src}: {self._field('rlnImageName')}, row {first + 1} "
                f"({particles['rlnImageName'].iloc[first]!r}): stack {name} not found "
                f"(looked in the working directory {Path.cwd()} and next to the particle file "
                f"in {self.star_path.parent})"
            )
        info = read_header(resolved, expect="stack")
        n = self.native_box_size
        if (info.nx, info.ny) != (n, n):
            raise InputError(
                f"{resolved}: images are {info.nx} x {info.ny} pixels but "
                f"{self._field('rlnImageSize')} in {src} gives {n}"
            )
        worst = members[np.argmax(self._image0[members])]
        if self._image0[worst] >= info.n_images:
            raise InputError(
                f"{src}: {self._field('rlnImageName')}, row {int(worst) + 1} "
                f"({particles['rlnImageName'].iloc[worst]!r}): image {int(index1[worst])} "
                f"(1-based) is beyond the end of {resolved}, which holds {info.n_images} "
                "images"
            )
        return info

    # -- basic properties ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        cropped = ""
        if self.box_size != self.native_box_size:
            cropped = f", cropped from box={self.native_box_size} at {self.native_pixel_size:g}"
        return (
            f"ParticleDataset({str(self.star_path)!r}, n={len(self)}, box={self.box_size}, "
            f"pixel_size={self.pixel_size:g}{cropped})"
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

    def read_images(self, indices: ArrayLike | Sequence[int]) -> Float32[np.ndarray, "b n n"]:
        """Images (b, N, N) float32 of the particles ``indices`` (0-based), in that order, at
        ``ds.box_size`` pixels of ``ds.pixel_size`` Angstrom (Fourier-cropped if asked for).

        Arguments:
            indices: 0-based particle indices (integers), any order, repeats allowed.
        """
        return np.asarray(self._images(self._check_indices(indices)))

    def _images(self, idx: np.ndarray) -> Float[Array, "b n n"] | Float32[np.ndarray, "b n n"]:
        """The images of the checked indices ``idx``, cropped to ``box_size`` when it differs
        from the stored box (a jax array then, else numpy)."""
        images = self._read_stored(idx)
        if self.box_size == self.native_box_size or len(idx) == 0:
            return images
        return _fourier_crop_jit(images, self.box_size)

    def _read_stored(self, idx: np.ndarray) -> Float32[np.ndarray, "b n n"]:
        """The stored (uncropped) images of the checked indices ``idx``, read stack by stack."""
        n = self.native_box_size
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

    def batch(self, indices: ArrayLike | Sequence[int], pad_to: int | None = None) -> ParticleBatch:
        """The particles ``indices`` (0-based) as a :class:`ParticleBatch`.

        Images are (b, N, N) float32, rotations RELION matrices, shifts (b, 2) in Angstrom.

        Arguments:
            indices: 0-based particle indices (integers).
            pad_to: if given, pad the batch to that size with copies of its last particle,
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
        images = self._images(idx)
        arrays = arrays_from_columns(self._columns, idx)
        return ParticleBatch(
            images=jnp.asarray(images),
            rotations=arrays["rotations"],
            shifts=arrays["shifts"],
            ctf=arrays["ctf"],
            indices=jnp.asarray(idx, dtype=jnp.int32),
            valid=jnp.asarray(valid),
        )


def _read_table(
    path: Path, require_poses: bool, project_dir: str | os.PathLike | None
) -> ParticleTable:
    """The particle table of a STAR or ``.cs`` file (dispatch on the suffix)."""
    if path.suffix.lower() == ".cs":
        return read_cryosparc(path, project_dir, require_poses=require_poses)
    if project_dir is not None:
        raise InputError(f"{path}: project_dir applies to cryoSPARC .cs files only")
    return read_particles(path, require_poses=require_poses)


def _single_pixel_and_box_size(table: ParticleTable) -> tuple[float, int]:
    """(pixel size in A, box size in px) shared by every optics group that has particles."""
    src = str(table.path)
    optics = table.optics
    used = np.unique(table.optics_rows())
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
    return float(px[0]), int(sizes[0])


def _check_micrographs(table: ParticleTable, is_cs: bool) -> None:
    """``rlnMicrographName``, when present, names the micrograph of every particle (or of none),
    and a micrograph found in several optics groups has one pixel size, voltage and Cs."""
    particles = table.particles
    if "rlnMicrographName" not in particles.columns:
        return
    src = str(table.path)
    field = "field location/micrograph_path" if is_cs else "column rlnMicrographName"
    raw = particles["rlnMicrographName"]
    names = raw.astype(str).str.strip()
    missing = raw.isna().to_numpy() | names.str.lower().isin(_NO_MICROGRAPH).to_numpy()
    if missing.all():
        return  # a column of nulls carries no micrograph information: as if absent
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"{src}: {field}, row {row + 1}: no micrograph name ({raw.iloc[row]!r}) for "
            f"{int(missing.sum())} of {len(raw)} particles; name the micrograph of every "
            "particle or leave the column out"
        )
    _check_micrograph_optics(table, names, src, field)


def _check_micrograph_optics(table: ParticleTable, names: pd.Series, src: str, field: str) -> None:
    """Error if one micrograph is in optics groups that differ in pixel size, voltage or Cs."""
    rows = table.optics_rows()
    pairs = pd.DataFrame({"mic": names.to_numpy(), "row": rows}).drop_duplicates()
    shared = pairs[pairs.duplicated("mic", keep=False)]
    if shared.empty:
        return
    optics = table.optics
    mics, optics_rows = shared["mic"].to_numpy(), shared["row"].to_numpy()
    for col in _MICROGRAPH_OPTICS:
        values = optics[col].to_numpy(np.float64)[optics_rows]
        spread = pd.Series(values).groupby(mics).agg(np.ptp)
        bad = spread[spread > 1e-6 * np.abs(values).max()]
        if bad.empty:
            continue
        mic = bad.index[0]
        groups = ", ".join(
            f"group {optics['rlnOpticsGroup'].iloc[r]}: {col} {optics[col].iloc[r]:g}"
            for r in optics_rows[mics == mic]
        )
        raise InputError(
            f"{src}: {field}: micrograph {mic} is in optics groups that disagree ({groups}); "
            "a micrograph has one pixel size, voltage and Cs"
        )
