"""RELION particle STAR files (3.0, 3.1, 4, 5), read with :mod:`starfile`.

Every table is normalised to RELION 3.1 form on reading (see ``docs/io.md``):

* ``optics``: one row per optics group with ``rlnOpticsGroup``, ``rlnOpticsGroupName``,
  ``rlnVoltage`` (kV), ``rlnSphericalAberration`` (mm), ``rlnAmplitudeContrast``,
  ``rlnImagePixelSize`` (A), ``rlnImageSize`` (px), ``rlnImageDimensionality`` (2), then any
  other optics columns of the file;
* ``particles``: ``rlnImageName`` (``NNNNNN@stack.mrcs``, 1-based), ``rlnAngleRot/Tilt/Psi`` (deg),
  ``rlnOriginXAngst/YAngst`` (A), ``rlnDefocusU/V`` (A), ``rlnDefocusAngle`` (deg),
  ``rlnPhaseShift`` (deg), ``rlnCtfBfactor`` (A^2), ``rlnCtfScalefactor``, ``rlnOpticsGroup``, then
  any other columns of the file (kept unchanged, written back unchanged).

Missing per-particle CTF values take RELION's defaults (``rlnDefocusV = rlnDefocusU``, angle,
phase shift and B-factor 0, scale 1). Missing optics values take RELION's silent defaults
(200 kV, Cs 0, Q0 0) with a warning. RELION 3.0 files (a single particle block, per-particle
optics, origins ``rlnOriginX/Y`` in pixels) are converted: optics groups are built from the
unique (voltage, Cs, Q0, pixel size) combinations, origins multiplied by the pixel size. As in
RELION 3.1, pixel origins in a file that has an optics block are ignored.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import starfile
from jaxtyping import ArrayLike, Int
from starfile.writer import StarWriter

from cryoensemble.errors import InputError
from cryoensemble.io._mrc import read_header
from cryoensemble.optics._ctf import CTFParams
from cryoensemble.pose._euler import euler_to_matrix

__all__ = [
    "EXTRA_COLUMN_PREFIX",
    "OPTICS_COLUMNS",
    "PARTICLE_COLUMNS",
    "ParticleTable",
    "format_image_name",
    "parse_image_name",
    "particle_arrays",
    "read_particles",
    "resolve_image_path",
    "write_particles",
]

#: Prefix of cryoensemble's own columns (e.g. ``cryoensembleStructureIndex``). Not ``rln``, so they
#: can never collide with a RELION label; RELION keeps unknown labels and ignores them.
EXTRA_COLUMN_PREFIX = "cryoensemble"

OPTICS_COLUMNS = [
    "rlnOpticsGroup",
    "rlnOpticsGroupName",
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
    "rlnImagePixelSize",
    "rlnImageSize",
    "rlnImageDimensionality",
]

PARTICLE_COLUMNS = [
    "rlnImageName",
    "rlnAngleRot",
    "rlnAngleTilt",
    "rlnAnglePsi",
    "rlnOriginXAngst",
    "rlnOriginYAngst",
    "rlnDefocusU",
    "rlnDefocusV",
    "rlnDefocusAngle",
    "rlnPhaseShift",
    "rlnCtfBfactor",
    "rlnCtfScalefactor",
    "rlnOpticsGroup",
]

ANGLE_COLUMNS = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]

# RELION's silent defaults for missing optics values (relion_conventions.md).
_OPTICS_DEFAULTS = {"rlnVoltage": 200.0, "rlnSphericalAberration": 0.0, "rlnAmplitudeContrast": 0.0}
# RELION's defaults for missing per-particle CTF values.
_PARTICLE_DEFAULTS = {
    "rlnDefocusAngle": 0.0,
    "rlnPhaseShift": 0.0,
    "rlnCtfBfactor": 0.0,
    "rlnCtfScalefactor": 1.0,
    "rlnOriginXAngst": 0.0,
    "rlnOriginYAngst": 0.0,
}
# Per-particle optics columns of RELION 3.0 files, moved to the optics block.
_V30_OPTICS = [
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
    "rlnImagePixelSize",
    "rlnImageSize",
    "rlnDetectorPixelSize",
    "rlnMagnification",
]
_OPTICS_FLOAT = [
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
    "rlnImagePixelSize",
]
_PARTICLE_FLOAT = PARTICLE_COLUMNS[1:-1]

_IMAGE_NAME = re.compile(r"^\s*(\d+)@(.+?)\s*$")


# --------------------------------------------------------------------------------------------
# image names and paths
# --------------------------------------------------------------------------------------------
def format_image_name(index_1based: int | float, stack_relpath: str | os.PathLike) -> str:
    """RELION image name ``NNNNNN@stack`` (1-based index, at least 6 digits).

    Arguments:
        index_1based: position of the image in its stack, counting from 1 (an integral value).
        stack_relpath: the stack path as it should appear in the STAR file.

    Raises :class:`InputError` for an index < 1 or not integral, or a path that is empty or
    contains ``@``.
    """
    i = int(index_1based)
    if i != index_1based or i < 1:
        raise InputError(f"image index must be an integer >= 1 (1-based), got {index_1based!r}")
    s = str(stack_relpath)
    if not s or "@" in s:
        raise InputError(f"invalid stack path {s!r} for an image name")
    return f"{i:06d}@{s}"


def parse_image_name(s: object) -> tuple[int, str]:
    """``"000012@Particles/a.mrcs"`` -> ``(12, "Particles/a.mrcs")`` (index 1-based).

    A trailing ``:mrcs`` (RELION's marker for a stack named ``.mrc``) is removed. Raises
    :class:`InputError` if ``s`` is not of the form ``NNNNNN@path`` with index >= 1.

    Arguments:
        s: an ``rlnImageName`` value (anything else is rejected with :class:`InputError`).
    """
    m = _IMAGE_NAME.match(str(s)) if isinstance(s, str) else None
    if m is None:
        raise InputError(f"image name {s!r} is not of the form NNNNNN@path")
    index = int(m.group(1))
    if index < 1:
        raise InputError(f"image name {s!r}: index {index} must be >= 1 (RELION counts from 1)")
    path = m.group(2)
    if path.endswith(":mrcs"):
        path = path[: -len(":mrcs")]
    return index, path


def resolve_image_path(stack_path: str | os.PathLike, star_path: str | os.PathLike) -> Path:
    """Locate a stack named in a STAR file, the way RELION does.

    An absolute path is used as is. A relative path is tried relative to the current working
    directory first (RELION's behaviour), then relative to the directory of the STAR file. If
    neither exists, the working-directory path is returned (and the caller reports it missing).

    Arguments:
        stack_path: the stack part of an image name.
        star_path: the STAR file that names it.
    """
    p = Path(stack_path)
    if p.is_absolute():
        return p
    if p.exists():
        return p.absolute()
    alt = Path(star_path).absolute().parent / p
    if alt.exists():
        return alt
    return p.absolute()


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class ParticleTable:
    """A particle STAR file in normalised RELION 3.1 form.

    ``optics`` and ``particles`` are pandas DataFrames with the columns listed in
    :data:`OPTICS_COLUMNS` / :data:`PARTICLE_COLUMNS` first, then any extra columns. ``path`` is
    the STAR file (for resolving relative image names); ``None`` for a table built in memory.
    A cryoSPARC ``.cs`` file is read into the same form (:func:`read_cryosparc`).

    Arguments:
        optics: one row per optics group (voltage kV, Cs mm, Q0, pixel size A, box px).
        particles: one row per particle (angles deg, origins A, defocus A, angles deg).
        path: the file the table was read from, or None.
    """

    optics: pd.DataFrame
    particles: pd.DataFrame
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.particles)

    @property
    def n_particles(self) -> int:
        """Number of particles."""
        return len(self.particles)

    def image_locations(self) -> tuple[np.ndarray, list[str]]:
        """(1-based indices int64 array, stack paths as written) of every particle."""
        parsed = [parse_image_name(s) for s in self.particles["rlnImageName"]]
        return np.array([p[0] for p in parsed], dtype=np.int64), [p[1] for p in parsed]

    def optics_rows(self) -> np.ndarray:
        """Row of ``optics`` of each particle (int64 array)."""
        groups = pd.Index(self.optics["rlnOpticsGroup"].to_numpy())
        rows = groups.get_indexer(self.particles["rlnOpticsGroup"].to_numpy())
        if (rows < 0).any():
            g = int(self.particles["rlnOpticsGroup"].to_numpy()[rows < 0][0])
            where = f"{self.path}: " if self.path is not None else ""
            raise InputError(f"{where}particle references unknown optics group {g}")
        return rows.astype(np.int64)

    def pixel_sizes(self) -> np.ndarray:
        """Pixel size in Angstrom of each particle (float64)."""
        return self.optics["rlnImagePixelSize"].to_numpy(np.float64)[self.optics_rows()]

    def subset(self, indices: ArrayLike | Sequence[int]) -> ParticleTable:
        """A table with the particles at ``indices`` (0-based), optics unchanged.

        Arguments:
            indices: 0-based particle indices.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return dataclasses.replace(self, particles=self.particles.iloc[idx].reset_index(drop=True))

    def with_particles(self, particles: pd.DataFrame) -> ParticleTable:
        """The same optics with another particles frame."""
        return dataclasses.replace(self, particles=particles)

    def extra_columns(self) -> list[str]:
        """Particle columns beyond :data:`PARTICLE_COLUMNS` (kept and written unchanged)."""
        return [c for c in self.particles.columns if c not in PARTICLE_COLUMNS]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _data_line_numbers(path: Path | None, block: str | None) -> list[int] | None:
    """1-based file line numbers of the data rows of loop ``data_<block>`` (for messages)."""
    if path is None or block is None:
        return None
    try:
        lines = _split_lines(Path(path).read_text(errors="replace"))
    except OSError:
        return None
    i, n = 0, len(lines)
    while i < n and lines[i].strip() != f"data_{block}":
        i += 1
    if i == n:
        return None
    i += 1
    while i < n and not lines[i].strip().startswith("_"):
        i += 1
    while i < n and lines[i].strip().startswith("_"):
        i += 1
    rows = []
    while i < n and not lines[i].strip().startswith("data_"):
        s = lines[i].strip()
        if s and not s.startswith("#"):
            rows.append(i + 1)
        i += 1
    return rows


def _where(src: str, block: str | None, row: int, lines: list[int] | None) -> str:
    what = f"row {row + 1}" + (f" of data_{block}" if block is not None else "")
    if lines is not None and row < len(lines):
        what += f" (line {lines[row]})"
    return what


def _numeric(
    df: pd.DataFrame,
    col: str,
    src: str,
    block: str | None,
    path: Path | None,
    integer: bool = False,
) -> pd.Series:
    """Column ``col`` as float64 (or int64), every value finite; else InputError naming the row."""
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce")
    bad = ~np.isfinite(vals.to_numpy(dtype=np.float64, na_value=np.nan))
    if integer and not bad.any():
        v = vals.to_numpy(dtype=np.float64)
        bad = v != np.round(v)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a finite number"
        lines = _data_line_numbers(path, block)
        raise InputError(
            f"{src}: column {col}, {_where(src, block, row, lines)}: value "
            f"{raw.iloc[row]!r} is not {kind}"
        )
    return vals.astype(np.int64) if integer else vals.astype(np.float64)


def _fill_optics_defaults(df: pd.DataFrame, src: str, block: str) -> None:
    """Add missing voltage/Cs/Q0 columns with RELION's silent defaults, with one warning."""
    missing = [c for c in _OPTICS_DEFAULTS if c not in df.columns]
    if missing:
        warnings.warn(
            f"{src}: {block} lacks {', '.join(missing)}; using RELION's defaults "
            + ", ".join(f"{c} = {_OPTICS_DEFAULTS[c]:g}" for c in missing),
            stacklevel=4,
        )
        for c in missing:
            df[c] = _OPTICS_DEFAULTS[c]


def _as_frame(block, src: str, name: str) -> pd.DataFrame:
    if isinstance(block, pd.DataFrame):
        return block.reset_index(drop=True)
    if isinstance(block, dict):  # a key-value block: a table of one row
        return pd.DataFrame({k: [v] for k, v in block.items()})
    raise InputError(f"{src}: data_{name} is not a table")


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Source:
    """Where the frames come from, for error messages: file, path (line numbers), block names."""

    src: str
    path: Path | None
    optics_block: str | None
    particles_block: str | None

    @property
    def optics_name(self) -> str:
        return f"data_{self.optics_block or 'optics'}"

    @property
    def particles_name(self) -> str:
        return f"data_{self.particles_block or 'particles'}"

    def optics_numeric(self, df: pd.DataFrame, col: str, integer: bool = False) -> pd.Series:
        return _numeric(df, col, self.src, self.optics_block, self.path, integer)

    def particles_numeric(self, df: pd.DataFrame, col: str, integer: bool = False) -> pd.Series:
        return _numeric(df, col, self.src, self.particles_block, self.path, integer)

    def particle_row(self, row: int) -> str:
        lines = _data_line_numbers(self.path, self.particles_block)
        return _where(self.src, self.particles_block, row, lines)


def _normalise(
    optics: pd.DataFrame,
    particles: pd.DataFrame,
    *,
    src: str,
    path: Path | None,
    optics_block: str | None,
    particles_block: str | None,
    require_poses: bool,
    star_path_for_images: Path | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and complete (optics, particles) in RELION 3.1 form; returns new frames."""
    where = _Source(src, path, optics_block, particles_block)
    _check_unique_columns(optics, src, where.optics_name)
    _check_unique_columns(particles, src, where.particles_name)
    optics = _normalise_optics(optics.copy(), where)
    particles = _normalise_particles(particles.copy(), optics, where, require_poses)
    _normalise_image_size(optics, particles, where, star_path_for_images)
    optics = optics[OPTICS_COLUMNS + [c for c in optics.columns if c not in OPTICS_COLUMNS]]
    particles = particles[
        PARTICLE_COLUMNS + [c for c in particles.columns if c not in PARTICLE_COLUMNS]
    ]
    return optics.reset_index(drop=True), particles.reset_index(drop=True)


def _check_unique_columns(df: pd.DataFrame, src: str, block: str) -> None:
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise InputError(f"{src}: {block} has column {dup[0]} more than once")


def _normalise_optics(optics: pd.DataFrame, where: _Source) -> pd.DataFrame:
    """Optics groups: unique integer ids, names, RELION defaults, a pixel size, valid ranges."""
    src = where.src
    if "rlnOpticsGroup" not in optics.columns:
        raise InputError(f"{src}: {where.optics_name} has no column rlnOpticsGroup")
    if len(optics) == 0:
        raise InputError(f"{src}: {where.optics_name} has no optics groups")
    optics["rlnOpticsGroup"] = where.optics_numeric(optics, "rlnOpticsGroup", True)
    dup = optics["rlnOpticsGroup"].duplicated()
    if dup.any():
        g = int(optics["rlnOpticsGroup"][dup].iloc[0])
        raise InputError(f"{src}: column rlnOpticsGroup: optics group {g} defined twice")
    if "rlnOpticsGroupName" not in optics.columns:
        optics["rlnOpticsGroupName"] = [f"opticsGroup{g}" for g in optics["rlnOpticsGroup"]]
    optics["rlnOpticsGroupName"] = optics["rlnOpticsGroupName"].astype(str)
    _fill_optics_defaults(optics, src, "data_optics")
    if "rlnImagePixelSize" not in optics.columns:
        if not {"rlnDetectorPixelSize", "rlnMagnification"} <= set(optics.columns):
            raise InputError(
                f"{src}: {where.optics_name} has no column rlnImagePixelSize "
                "(nor rlnDetectorPixelSize and rlnMagnification)"
            )
        det = where.optics_numeric(optics, "rlnDetectorPixelSize")
        mag = where.optics_numeric(optics, "rlnMagnification")
        optics["rlnImagePixelSize"] = det * 1e4 / mag
    for col in _OPTICS_FLOAT:
        optics[col] = where.optics_numeric(optics, col)
    _check_optics_ranges(optics, where)
    return optics


def _check_optics_ranges(optics: pd.DataFrame, where: _Source) -> None:
    """Voltage and pixel size > 0, amplitude contrast in [0, 1)."""
    for col, lo, hi in [
        ("rlnVoltage", 0.0, None),
        ("rlnImagePixelSize", 0.0, None),
        ("rlnAmplitudeContrast", None, 1.0),
    ]:
        v = optics[col].to_numpy()
        bad = (v <= lo if lo is not None else np.zeros(len(v), bool)) | (
            v >= hi if hi is not None else np.zeros(len(v), bool)
        )
        if col == "rlnAmplitudeContrast":
            bad |= v < 0
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            rng = "in [0, 1)" if col == "rlnAmplitudeContrast" else "> 0"
            raise InputError(
                f"{where.src}: column {col}, {_where(where.src, where.optics_block, row, None)}: "
                f"value {v[row]} must be {rng}"
            )


def _normalise_particles(
    particles: pd.DataFrame, optics: pd.DataFrame, where: _Source, require_poses: bool
) -> pd.DataFrame:
    """Particles: required columns, known optics groups, valid image names, CTF defaults."""
    required = ["rlnImageName", "rlnDefocusU"] + (ANGLE_COLUMNS if require_poses else [])
    for col in required:
        if col not in particles.columns:
            raise InputError(f"{where.src}: {where.particles_name} has no column {col} (required)")
    _assign_optics_groups(particles, optics, where)
    _check_image_names(particles, where)
    if "rlnDefocusV" not in particles.columns:
        particles["rlnDefocusV"] = particles["rlnDefocusU"]
    for col in ANGLE_COLUMNS:
        if col not in particles.columns:
            particles[col] = 0.0
    for col, default in _PARTICLE_DEFAULTS.items():
        if col not in particles.columns:
            particles[col] = default
    for col in _PARTICLE_FLOAT:
        particles[col] = where.particles_numeric(particles, col)
    return particles


def _assign_optics_groups(particles: pd.DataFrame, optics: pd.DataFrame, where: _Source) -> None:
    """Integer rlnOpticsGroup of every particle, each defined in the optics table (in place)."""
    if "rlnOpticsGroup" not in particles.columns:
        if len(optics) != 1:
            raise InputError(
                f"{where.src}: {where.particles_name} has no column rlnOpticsGroup but there are "
                f"{len(optics)} optics groups"
            )
        particles["rlnOpticsGroup"] = int(optics["rlnOpticsGroup"].iloc[0])
    particles["rlnOpticsGroup"] = where.particles_numeric(particles, "rlnOpticsGroup", True)
    known = set(optics["rlnOpticsGroup"].tolist())
    unknown = ~particles["rlnOpticsGroup"].isin(known)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        g = int(particles["rlnOpticsGroup"].iloc[row])
        raise InputError(
            f"{where.src}: column rlnOpticsGroup, {where.particle_row(row)}: "
            f"optics group {g} is not defined in {where.optics_name} (groups: {sorted(known)})"
        )


def _check_image_names(particles: pd.DataFrame, where: _Source) -> None:
    """Every rlnImageName of the form NNNNNN@path with index >= 1; stored as str (in place)."""
    names = particles["rlnImageName"]
    for row, s in enumerate(names):
        if not isinstance(s, str) or _IMAGE_NAME.match(s) is None or int(s.split("@")[0]) < 1:
            raise InputError(
                f"{where.src}: column rlnImageName, {where.particle_row(row)}: {s!r} is not of "
                "the form NNNNNN@path (index >= 1)"
            )
    particles["rlnImageName"] = names.astype(str)


def _normalise_image_size(
    optics: pd.DataFrame, particles: pd.DataFrame, where: _Source, star_path: Path | None
) -> None:
    """rlnImageSize > 0 (from the stacks if the file lacks it); 2-D particles only (in place)."""
    if "rlnImageSize" not in optics.columns:
        optics["rlnImageSize"] = _image_sizes_from_stacks(optics, particles, where.src, star_path)
    optics["rlnImageSize"] = where.optics_numeric(optics, "rlnImageSize", True)
    if (optics["rlnImageSize"] <= 0).any():
        row = int(np.flatnonzero((optics["rlnImageSize"] <= 0).to_numpy())[0])
        raise InputError(
            f"{where.src}: column rlnImageSize, "
            f"{_where(where.src, where.optics_block, row, None)}: must be > 0"
        )
    if "rlnImageDimensionality" in optics.columns:
        dims = where.optics_numeric(optics, "rlnImageDimensionality", True)
        if (dims != 2).any():
            raise InputError(
                f"{where.src}: column rlnImageDimensionality: only 2-D particles supported"
            )
    optics["rlnImageDimensionality"] = 2


def _image_sizes_from_stacks(optics, particles, src, star_path) -> list[int]:
    """rlnImageSize of each optics group read from the header of its first particle's stack."""
    sizes = []
    for g in optics["rlnOpticsGroup"]:
        rows = np.flatnonzero((particles["rlnOpticsGroup"] == g).to_numpy())
        if len(rows) == 0:
            raise InputError(
                f"{src}: rlnImageSize missing for optics group {g}, which has no particles"
            )
        _, stack = parse_image_name(particles["rlnImageName"].iloc[rows[0]])
        if star_path is None:
            raise InputError(f"{src}: rlnImageSize missing for optics group {g}")
        resolved = resolve_image_path(stack, star_path)
        if not resolved.exists():
            raise InputError(
                f"{src}: rlnImageSize is missing (optics group {g}) and the stack {stack} "
                f"(looked for {resolved}) to read it from was not found"
            )
        info = read_header(resolved, expect="stack")
        if info.nx != info.ny:
            raise InputError(f"{resolved}: images are not square ({info.nx} x {info.ny})")
        sizes.append(info.nx)
    return sizes


def _from_relion30(particles: pd.DataFrame, src: str, path: Path | None, block: str):
    """RELION 3.0 table -> (optics, particles) with optics groups and Angstrom origins."""
    p = particles.copy()
    if "rlnImagePixelSize" in p.columns:
        px = _numeric(p, "rlnImagePixelSize", src, block, path)
    elif {"rlnDetectorPixelSize", "rlnMagnification"} <= set(p.columns):
        det = _numeric(p, "rlnDetectorPixelSize", src, block, path)
        mag = _numeric(p, "rlnMagnification", src, block, path)
        if (mag <= 0).any():
            row = int(np.flatnonzero((mag <= 0).to_numpy())[0])
            raise InputError(
                f"{src}: column rlnMagnification, "
                f"{_where(src, block, row, _data_line_numbers(path, block))}: must be > 0"
            )
        px = det * 1e4 / mag
    else:
        raise InputError(
            f"{src}: RELION 3.0 file (no data_optics) without a pixel size: needs column "
            "rlnImagePixelSize, or rlnDetectorPixelSize (um) and rlnMagnification"
        )
    key = pd.DataFrame({"rlnImagePixelSize": px})
    for col in _OPTICS_DEFAULTS:
        if col in p.columns:
            key[col] = _numeric(p, col, src, block, path)
    _fill_optics_defaults(key, src, f"data_{block}")
    if "rlnImageSize" in p.columns:
        key["rlnImageSize"] = _numeric(p, "rlnImageSize", src, block, path, True)
    cols = list(key.columns)
    group = key.groupby(cols, sort=False).ngroup().to_numpy() + 1
    optics = key.drop_duplicates(subset=cols).reset_index(drop=True)
    optics.insert(0, "rlnOpticsGroup", np.arange(1, len(optics) + 1, dtype=np.int64))
    optics.insert(1, "rlnOpticsGroupName", [f"opticsGroup{g}" for g in optics["rlnOpticsGroup"]])

    for axis in "XY":
        ang, pix = f"rlnOrigin{axis}Angst", f"rlnOrigin{axis}"
        if ang not in p.columns:
            p[ang] = _numeric(p, pix, src, block, path) * px if pix in p.columns else 0.0
    p = p.drop(columns=[c for c in _V30_OPTICS + ["rlnOriginX", "rlnOriginY"] if c in p.columns])
    p["rlnOpticsGroup"] = group.astype(np.int64)
    return optics, p


# --------------------------------------------------------------------------------------------
# reading and writing
# --------------------------------------------------------------------------------------------
def read_particles(path: str | os.PathLike, require_poses: bool = False) -> ParticleTable:
    """Read a RELION particle STAR file (3.0, 3.1, 4 or 5) into a normalised :class:`ParticleTable`.

    Every problem raises :class:`InputError` naming the file, the column and the row or line.
    RELION 4/5 additions (``rlnImageDimensionality``, ``rlnCtfDataAreCtfPremultiplied``,
    ``rlnMicrographOriginalPixelSize``, per-particle bookkeeping columns) are kept as extra
    columns; only 2-D particles are supported.

    Arguments:
        path: the STAR file.
        require_poses: if true, the angle columns rlnAngleRot/Tilt/Psi must be present (else
            they default to 0).
    """
    path = Path(path)
    blocks = _read_blocks(path)
    if "optics" in blocks:
        ob, pb = "optics", "particles"
        optics, particles = _frames_31(blocks, str(path))
    else:
        pb = _relion30_block_name(blocks, str(path))
        optics, particles = _frames_30(blocks, str(path), path, pb)
        ob = None
    if len(particles) == 0:
        raise InputError(f"{path}: data_{pb} has no particles")
    optics, particles = _normalise(
        optics,
        particles,
        src=str(path),
        path=path,
        optics_block=ob,
        particles_block=pb,
        require_poses=require_poses,
        star_path_for_images=path,
    )
    return ParticleTable(optics=optics, particles=particles, path=path.absolute())


def _read_blocks(path: Path) -> dict:
    """The data blocks of a STAR file (``rlnImageName`` kept as text), every number finite."""
    src = str(path)
    if not path.exists():
        raise InputError(f"{src}: STAR file not found")
    if path.is_dir():
        raise InputError(f"{src}: is a directory, expected a STAR file")
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{src}: STAR file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{src}: not a text file (byte {err.start} is not UTF-8)") from None
    _check_layout(src, _split_lines(text))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True, parse_as_string=["rlnImageName"])
    except Exception as err:  # starfile/pandas raise many kinds on malformed text
        detail = " ".join(str(err).split())  # pandas messages span lines: keep one
        raise InputError(f"{src}: cannot parse STAR file: {type(err).__name__}: {detail}") from None
    if not blocks:
        raise InputError(f"{src}: no data_ blocks found (not a STAR file?)")
    for name, block in blocks.items():
        _check_finite_numbers(block, src, path, name)
    return blocks


def _split_lines(text: str) -> list[str]:
    """Lines as starfile sees them (universal newlines only, not str.splitlines' extra breaks)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _check_layout(src: str, lines: list[str]) -> None:
    """Refuse what starfile would misread: repeated labels, rows of the wrong length.

    Follows starfile's reading: a block is a loop if its first ``loop_`` or ``_label`` line is
    ``loop_``; a loop's labels are the ``_label`` lines right after it, its rows every other
    line up to the next ``data_`` line (blank lines and ``#`` comments skipped).
    """
    i, n = 0, len(lines)
    while i < n:
        if not lines[i].strip().startswith("data_"):
            i += 1
            continue
        block = lines[i].strip()
        i += 1
        while i < n and not lines[i].strip().startswith(("loop_", "_", "data_")):
            i += 1
        if i < n and lines[i].strip().startswith("loop_"):
            i = _check_loop(src, block, lines, i + 1)
        elif i < n and lines[i].strip().startswith("_"):
            i = _check_pairs(src, block, lines, i)


def _check_loop(src: str, block: str, lines: list[str], i: int) -> int:
    """Check the loop whose labels start at line index ``i``; return the index after it."""
    labels: dict[str, int] = {}
    while i < len(lines) and lines[i].strip().startswith("_"):
        label = lines[i].split()[0][1:]
        if not label or label in labels:
            what = f"label _{label} of line {labels[label]}" if label else "an empty label"
            raise InputError(f"{src}:{i + 1}: {block} repeats {what}; each column once")
        labels[label] = i + 1
        i += 1
    while i < len(lines) and not lines[i].strip().startswith("data_"):
        values = _tokens(src, i, lines[i])
        if values and len(values) != len(labels):
            few = "too few" if len(values) < len(labels) else "too many"
            raise InputError(
                f"{src}:{i + 1}: row of {block} has {few} values: {len(values)} for "
                f"{len(labels)} columns"
            )
        i += 1
    return i


def _check_pairs(src: str, block: str, lines: list[str], i: int) -> int:
    """Check a block of ``_label value`` lines starting at line index ``i``."""
    seen: dict[str, int] = {}
    while i < len(lines) and not lines[i].strip().startswith("data"):
        if lines[i].strip().startswith("_"):
            values = _tokens(src, i, lines[i])
            if len(values) != 2:
                raise InputError(f"{src}:{i + 1}: {block}: expected '_label value'")
            if values[0] in seen:
                raise InputError(
                    f"{src}:{i + 1}: {block} repeats {values[0]} of line {seen[values[0]]}"
                )
            seen[values[0]] = i + 1
        i += 1
    return i


def _tokens(src: str, i: int, line: str) -> list[str]:
    """The values of a line (quotes group, ``#`` starts a comment), as pandas reads them."""
    lexer = shlex.shlex(line.replace("'", '"'), posix=True)
    lexer.whitespace_split, lexer.whitespace, lexer.commenters = True, " \t", "#"
    try:
        return list(lexer)
    except ValueError as err:
        raise InputError(f"{src}:{i + 1}: {err}") from None


def _check_finite_numbers(block, src: str, path: Path, name: str) -> None:
    """Every number of a block (any column, known or not) is finite; else name row and line."""
    if isinstance(block, dict):
        for key, v in block.items():
            if isinstance(v, float) and not np.isfinite(v):
                raise InputError(f"{src}: data_{name}, {key}: value {v} is not a finite number")
        return
    if not isinstance(block, pd.DataFrame):
        return
    for col in block.columns:
        values = block[col]
        if values.dtype.kind == "O":  # mixed text and numbers: check the numbers
            numbers = values.map(lambda v: v if isinstance(v, float) else 0.0)
            bad = ~np.isfinite(numbers.to_numpy(dtype=np.float64))
        elif values.dtype.kind in "fc":
            bad = ~np.isfinite(values.to_numpy())
        else:
            continue
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            lines = _data_line_numbers(path, name)
            raise InputError(
                f"{src}: column {col}, {_where(src, name, row, lines)}: value "
                f"{values.iloc[row]!r} is not a finite number"
            )


def _frames_31(blocks: dict, src: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(optics, particles) of a RELION 3.1+ file; pixel origins dropped as RELION does."""
    if "particles" not in blocks:
        raise InputError(
            f"{src}: no data_particles block (blocks found: "
            f"{', '.join('data_' + k for k in blocks)})"
        )
    optics = _as_frame(blocks["optics"], src, "optics")
    particles = _as_frame(blocks["particles"], src, "particles")
    dropped = [c for c in ("rlnOriginX", "rlnOriginY") if c in particles.columns]
    if dropped:
        warnings.warn(
            f"{src}: pixel origins {', '.join(dropped)} ignored (the file has an optics "
            "block; RELION 3.1 ignores them too); use rlnOriginX/YAngst",
            stacklevel=4,
        )
        particles = particles.drop(columns=dropped)
    return optics, particles


def _relion30_block_name(blocks: dict, src: str) -> str:
    """The particle block of a RELION 3.0 file: data_particles, else the first with images."""
    if "particles" in blocks:
        return "particles"
    for k, b in blocks.items():
        if isinstance(b, pd.DataFrame | dict) and "rlnImageName" in b:
            return k
    raise InputError(
        f"{src}: no particle block (no data_particles and no block with rlnImageName; "
        f"blocks found: {', '.join('data_' + k for k in blocks)})"
    )


def _frames_30(blocks: dict, src: str, path: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(optics, particles) of a RELION 3.0 file (optics groups built from per-particle values)."""
    particles = _as_frame(blocks[name], src, name)
    if "rlnImageName" not in particles.columns:
        raise InputError(f"{src}: data_{name} has no column rlnImageName (required)")
    if len(particles) == 0:
        raise InputError(f"{src}: data_{name} has no particles")
    return _from_relion30(particles, src, path, name)


_DATA_BLOCK_RE = re.compile(r"^data_", re.MULTILINE)


def write_particles(
    path: str | os.PathLike,
    table_or_frames: ParticleTable | tuple | list | dict,
    overwrite: bool = False,
) -> Path:
    """Write a particle STAR file in RELION 3.1 form (data_optics + data_particles), atomically.

    The frames are validated and completed as on reading (RELION defaults); extra columns are
    written after RELION's. Floats are written with the shortest representation that reads back
    bit-identical.

    Arguments:
        path: the STAR file to write (its directory must exist).
        table_or_frames: a :class:`ParticleTable`, a tuple ``(optics, particles)`` of DataFrames,
            or a dict with keys ``"optics"`` and ``"particles"``.
        overwrite: replace an existing file.

    Returns:
        ``path``.
    """
    path = Path(path)
    src = str(path)
    if isinstance(table_or_frames, ParticleTable):
        optics, particles = table_or_frames.optics, table_or_frames.particles
    elif isinstance(table_or_frames, dict):
        try:
            optics, particles = table_or_frames["optics"], table_or_frames["particles"]
        except KeyError as err:
            raise InputError(f"{src}: write_particles needs key {err} in the dict") from None
    elif isinstance(table_or_frames, tuple | list) and len(table_or_frames) == 2:
        optics, particles = table_or_frames
    else:
        raise InputError(
            f"{src}: write_particles expects a ParticleTable, (optics, particles) or a dict, "
            f"got {type(table_or_frames).__name__}"
        )
    if path.exists() and not overwrite:
        raise InputError(f"{src}: file exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise InputError(f"{src}: directory {path.parent} does not exist")
    optics, particles = _normalise(
        pd.DataFrame(optics),
        pd.DataFrame(particles),
        src=src,
        path=None,
        optics_block="optics",
        particles_block="particles",
        require_poses=False,
        star_path_for_images=None,
    )
    # RELION writes 1-based indices with at least 6 digits: 1@s.mrcs -> 000001@s.mrcs
    particles["rlnImageName"] = [_six_digit_index(name) for name in particles["rlnImageName"]]
    text = StarWriter({"optics": optics, "particles": particles}, float_format=None).to_string()
    text = _DATA_BLOCK_RE.sub("# version 30001\ndata_", text)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _six_digit_index(name: str) -> str:
    """``1@s.mrcs`` -> ``000001@s.mrcs``, the rest of the name unchanged (``:mrcs`` kept)."""
    m = _IMAGE_NAME.match(name)
    if m is None:  # _normalise has validated every name
        raise InputError(f"image name {name!r} is not of the form NNNNNN@path")
    return f"{int(m.group(1)):06d}@{m.group(2)}"


# --------------------------------------------------------------------------------------------
# arrays for JAX
# --------------------------------------------------------------------------------------------
def particle_columns(table: ParticleTable) -> dict[str, np.ndarray]:
    """Per-particle float32 numpy arrays of every pose/CTF quantity (optics broadcast).

    Arguments:
        table: the particles; angles in degrees, shifts and defocus in A, voltage in kV.
    """
    p, o = table.particles, table.optics
    rows = table.optics_rows()
    f = lambda s: s.to_numpy(dtype=np.float32)
    return {
        "rot": f(p["rlnAngleRot"]),
        "tilt": f(p["rlnAngleTilt"]),
        "psi": f(p["rlnAnglePsi"]),
        "shift_x": f(p["rlnOriginXAngst"]),
        "shift_y": f(p["rlnOriginYAngst"]),
        "defocus_u": f(p["rlnDefocusU"]),
        "defocus_v": f(p["rlnDefocusV"]),
        "defocus_angle": f(p["rlnDefocusAngle"]),
        "phase_shift": f(p["rlnPhaseShift"]),
        "b_factor": f(p["rlnCtfBfactor"]),
        "scale": f(p["rlnCtfScalefactor"]),
        "voltage": f(o["rlnVoltage"])[rows],
        "spherical_aberration": f(o["rlnSphericalAberration"])[rows],
        "amplitude_contrast": f(o["rlnAmplitudeContrast"])[rows],
        "pixel_size": f(o["rlnImagePixelSize"])[rows],
    }


def arrays_from_columns(cols: dict[str, np.ndarray], idx: Int[np.ndarray, " b"]) -> dict:
    """JAX arrays (rotations, shifts, ctf) of the particles ``idx`` of :func:`particle_columns`.

    Arguments:
        cols: the output of :func:`particle_columns`.
        idx: 0-based particle indices (b,).

    Returns:
        ``{"rotations": (b, 3, 3), "shifts": (b, 2) in A, "ctf": CTFParams with (b,) fields}``.
    """
    g = lambda k: jnp.asarray(cols[k][idx])
    rotations = euler_to_matrix(g("rot"), g("tilt"), g("psi")).astype(jnp.float32)
    shifts = jnp.stack([g("shift_x"), g("shift_y")], axis=-1)
    ctf = CTFParams(
        defocus_u=g("defocus_u"),
        defocus_v=g("defocus_v"),
        defocus_angle=g("defocus_angle"),
        voltage=g("voltage"),
        spherical_aberration=g("spherical_aberration"),
        amplitude_contrast=g("amplitude_contrast"),
        phase_shift=g("phase_shift"),
        b_factor=g("b_factor"),
        scale=g("scale"),
    )
    return {"rotations": rotations, "shifts": shifts, "ctf": ctf}


def particle_arrays(table: ParticleTable, indices: ArrayLike | Sequence[int] | None = None) -> dict:
    """JAX-ready float32 arrays of the particles ``indices`` (0-based; all if None).

    Returns ``{"rotations": (b, 3, 3), "shifts": (b, 2) [originX, originY] in Angstrom,
    "ctf": CTFParams with (b,) fields}``; optics-group values are broadcast to particles.

    Arguments:
        table: the particles.
        indices: 0-based particle indices (any integer array-like), or None for all.
    """
    n = len(table)
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    bad = (idx < 0) | (idx >= n)
    if bad.any():
        where = f"{table.path}: " if table.path is not None else ""
        raise InputError(f"{where}particle index {int(idx[bad][0])} out of range [0, {n})")
    return arrays_from_columns(particle_columns(table), idx)
