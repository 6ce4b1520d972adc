"""MRC maps and image stacks (MRC2014), read and written with :mod:`mrcfile`.

Maps are arrays ``[z, y, x]`` (float32) with a cubic voxel size in Angstrom. Image stacks are
``[n, y, x]`` with space group ``ispg = 0`` and ``mz = 1`` (the MRC2014 convention for a stack of
2-D images); the voxel size is ``pixel_size`` on x, y and z.

Files are written atomically: into a temporary file in the destination's directory, renamed over
the destination only when complete. An existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import mrcfile
import mrcfile.utils
import numpy as np
from jaxtyping import ArrayLike, Float32
from mrcfile.dtypes import HEADER_DTYPE

from cryoensemble.errors import InputError, check_positive

__all__ = [
    "MrcHeaderInfo",
    "MrcStackWriter",
    "read_header",
    "read_map",
    "read_stack",
    "write_map",
]

_HEADER_BYTES = 1024
_IMAGE_STACK_SPACEGROUP = 0
_VOLUME_SPACEGROUP = 1
# MRC2014 space groups: 0 image stack, 1-230 volume, 401-630 stack of volumes.
_VOLUME_SPACEGROUPS = range(1, 231)
_VOLUME_STACK_SPACEGROUPS = range(401, 631)
# Header words that are floats and must be finite (cell lengths/angles, origin).
_FLOAT_FIELDS = (
    ("cella", ("x", "y", "z")),
    ("cellb", ("alpha", "beta", "gamma")),
    ("origin", ("x", "y", "z")),
)


class MrcHeaderInfo:
    """What the dataset needs from an MRC header: shape, dtype, data offset, voxel size."""

    __slots__ = ("path", "nx", "ny", "nz", "dtype", "offset", "voxel_size", "ispg")

    def __init__(self, path, nx, ny, nz, dtype, offset, voxel_size, ispg):
        self.path = Path(path)
        self.nx, self.ny, self.nz = int(nx), int(ny), int(nz)
        self.dtype = dtype
        self.offset = int(offset)
        self.voxel_size = voxel_size
        self.ispg = int(ispg)

    @property
    def n_images(self) -> int:
        """Number of 2-D sections (images of a stack)."""
        return self.nz

    def __repr__(self) -> str:
        return (
            f"MrcHeaderInfo({str(self.path)!r}, nx={self.nx}, ny={self.ny}, nz={self.nz}, "
            f"dtype={self.dtype}, ispg={self.ispg})"
        )


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an {what}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: {what} is empty (0 bytes)")


def _open_error(path: Path, err: Exception) -> InputError:
    return InputError(f"{path}: not a valid MRC file: {err}")


def _header_info(path: Path, header) -> MrcHeaderInfo:
    """Validate an MRC header against the file size; return its :class:`MrcHeaderInfo`."""
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    if nx <= 0 or ny <= 0 or nz <= 0:
        raise InputError(f"{path}: invalid MRC header: dimensions nx={nx}, ny={ny}, nz={nz}")
    try:
        dtype = mrcfile.utils.data_dtype_from_header(header)
    except ValueError as err:
        raise InputError(f"{path}: invalid MRC header field mode: {err}") from None
    if dtype.kind == "c":
        raise InputError(f"{path}: MRC mode {int(header.mode)} is complex; real data expected")
    nsymbt = int(header.nsymbt)
    _check_header_floats(path, header)
    offset = _HEADER_BYTES + nsymbt
    expected = offset + nx * ny * nz * dtype.itemsize
    actual = path.stat().st_size
    if actual < expected:
        raise InputError(
            f"{path}: truncated MRC file: the header (nx={nx}, ny={ny}, nz={nz}, "
            f"mode={int(header.mode)}) needs {expected} bytes, the file has {actual}"
        )
    if actual > expected:
        raise InputError(
            f"{path}: MRC file is {actual - expected} bytes larger than its header "
            f"(nx={nx}, ny={ny}, nz={nz}, mode={int(header.mode)}) describes"
        )
    vs = (
        float(header.cella.x) / int(header.mx) if int(header.mx) else 0.0,
        float(header.cella.y) / int(header.my) if int(header.my) else 0.0,
        float(header.cella.z) / int(header.mz) if int(header.mz) else 0.0,
    )
    return MrcHeaderInfo(path, nx, ny, nz, dtype, offset, vs, int(header.ispg))


def _check_header_floats(path: Path, header) -> None:
    """Every float word of the header that describes geometry is finite."""
    for group, names in _FLOAT_FIELDS:
        for name in names:
            value = float(getattr(header[group], name))
            if not np.isfinite(value):
                raise InputError(
                    f"{path}: invalid MRC header field {group}.{name} = {value}; must be finite"
                )


def _check_kind(path: Path, header, expect: Literal["map", "stack"] | None) -> None:
    """Refuse a 3-D map where a stack of 2-D images is expected, and the reverse.

    The header decides (MRC2014: ``ispg`` 0 and ``mz`` 1 for image stacks, ``ispg`` 1-230
    with ``mz = nz`` for volumes); a ``.mrcs`` file is a stack whatever its header says, as in
    RELION.
    """
    nz, mz, ispg = int(header.nz), int(header.mz), int(header.ispg)
    if expect == "stack" and nz > 1 and path.suffix.lower() != ".mrcs":
        if ispg in _VOLUME_SPACEGROUPS and mz == nz:
            raise InputError(
                f"{path}: is a 3-D map (header ispg = {ispg}, {nz} sections), not a stack of "
                "2-D particle images; particle stacks have ispg = 0 (or the suffix .mrcs)"
            )
        if ispg in _VOLUME_STACK_SPACEGROUPS:
            raise InputError(
                f"{path}: is a stack of 3-D volumes (header ispg = {ispg}), not a stack of 2-D "
                "particle images"
            )
    if expect == "map" and nz > 1:
        if (ispg == _IMAGE_STACK_SPACEGROUP and mz == 1) or ispg in _VOLUME_STACK_SPACEGROUPS:
            raise InputError(
                f"{path}: is a stack of {nz} images (header ispg = {ispg}, mz = {mz}), "
                "not a 3-D map"
            )


def read_header(
    path: str | os.PathLike, expect: Literal["map", "stack"] | None = None
) -> MrcHeaderInfo:
    """Read and validate only the header of an MRC file (fast; the data are not read).

    Raises :class:`InputError` for a missing, empty, invalid or truncated file, non-finite
    cell or origin values, and (with ``expect``) a 3-D map where a stack of images is expected
    or the reverse.

    Arguments:
        path: the MRC file (map or stack).
        expect: ``"stack"`` (2-D particle images), ``"map"`` (a 3-D volume) or None (either).
    """
    path = Path(path)
    _check_exists(path, "MRC file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", header_only=True, permissive=False) as mrc:
                header = mrc.header.copy()
    except (ValueError, OSError, EOFError) as err:
        raise _open_error(path, err) from None
    info = _header_info(path, header)
    _check_kind(path, header, expect)
    return info


def _axis_permutation(path: Path, header) -> tuple[int, int, int] | None:
    """Transpose that brings stored (sections, rows, columns) to [z, y, x]; None if identity."""
    order = (int(header.maps), int(header.mapr), int(header.mapc))
    if order == (3, 2, 1):
        return None
    if sorted(order) != [1, 2, 3]:
        raise InputError(
            f"{path}: invalid MRC header fields mapc/mapr/maps = "
            f"{int(header.mapc)}/{int(header.mapr)}/{int(header.maps)}"
        )
    z, y, x = (order.index(axis) for axis in (3, 2, 1))
    return z, y, x


def read_map(path: str | os.PathLike) -> tuple[Float32[np.ndarray, "z y x"], float]:
    """Read an MRC map: ``(array float32 [z, y, x], voxel_size in Angstrom)``.

    The voxel size comes from the header (``cella / mx``, ...), must be > 0 and the same on all
    axes. Raises :class:`InputError` for a missing, empty, truncated or invalid file.

    Arguments:
        path: the MRC file (a 2-D image is returned as a map of one section).
    """
    path = Path(path)
    info = read_header(path, expect="map")  # validates the file size against the header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=False) as mrc:
                header = mrc.header.copy()
                data = np.array(mrc.data, dtype=np.float32)
    except (ValueError, OSError, EOFError) as err:
        raise _open_error(path, err) from None
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape != (info.nz, info.ny, info.nx):
        raise InputError(
            f"{path}: data shape {data.shape} does not match the header "
            f"(nz, ny, nx) = ({info.nz}, {info.ny}, {info.nx})"
        )
    _check_finite_data(path, data, "voxel")
    perm = _axis_permutation(path, header)
    if perm is not None:
        data = np.ascontiguousarray(np.transpose(data, perm))
    vx, vy, vz = info.voxel_size
    check = [vx, vy] if data.shape[0] == 1 else [vx, vy, vz]
    for name, v in zip("xyz", check, strict=False):
        if not np.isfinite(v) or v <= 0:
            raise InputError(f"{path}: header voxel size along {name} is {v}; must be > 0")
    if max(check) - min(check) > 1e-4 * max(check):
        raise InputError(
            f"{path}: voxel size is not cubic (x, y, z = {vx:g}, {vy:g}, {vz:g} Angstrom); "
            "a single voxel size is required"
        )
    return data, float(vx)


def _check_finite_data(
    path: Path, data: np.ndarray, what: str, indices: np.ndarray | None = None
) -> None:
    """Refuse NaN or infinite values, naming the first one (0-based indices).

    ``indices``: the file index of each image of ``data`` (for a subset of a stack).
    """
    bad = ~np.isfinite(data)
    if not bad.any():
        return
    where = np.unravel_index(int(np.flatnonzero(bad)[0]), data.shape)
    value = data[where]
    if indices is not None:
        where = (indices[where[0]], *where[1:])
    at = ", ".join(str(int(i)) for i in where)
    raise InputError(f"{path}: {what} [{at}] (0-based) is {value}; MRC data must be finite")


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _check_destination(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise InputError(f"{path}: file exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise InputError(f"{path}: directory {path.parent} does not exist")


def write_map(
    path: str | os.PathLike, array: ArrayLike, voxel_size: float, overwrite: bool = False
) -> Path:
    """Write a map ``[z, y, x]`` as float32 MRC (volume, ``ispg = 1``), atomically.

    Raises :class:`InputError` if ``path`` exists and ``overwrite`` is False, if the array is not
    3-D, or if ``voxel_size`` is not a number > 0.

    Arguments:
        path: the MRC file to write (its directory must exist).
        array: the map, indexed [z, y, x] (stored as float32).
        voxel_size: voxel size in Angstrom.
        overwrite: replace an existing file.

    Returns:
        ``path``.
    """
    path = Path(path)
    voxel_size = check_positive(f"{path}: voxel_size", voxel_size)
    data = np.asarray(array, dtype=np.float32)
    if data.ndim != 3:
        raise InputError(f"{path}: a map must be a 3-D array [z, y, x], got shape {data.shape}")
    _check_destination(path, overwrite)
    tmp = _temp_path(path)
    try:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data))
            mrc.set_volume()
            mrc.voxel_size = voxel_size
            mrc.update_header_stats()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_stack(
    path: str | os.PathLike, indices: ArrayLike | Sequence[int] | None = None
) -> Float32[np.ndarray, "n y x"]:
    """Images ``[n, y, x]`` float32 of an MRC stack, memory-mapped (only the images read).

    A file holding a single 2-D image is returned as a stack of one.

    Arguments:
        path: the MRC stack.
        indices: 0-based image indices, any order; ``None`` reads all images.
    """
    path = Path(path)
    info = read_header(path, expect="stack")
    mm = np.memmap(
        path, dtype=info.dtype, mode="r", offset=info.offset, shape=(info.nz, info.ny, info.nx)
    )
    try:
        idx = np.arange(info.nz) if indices is None else np.asarray(indices).reshape(-1)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise InputError(f"{path}: image indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64)
        bad = (idx < 0) | (idx >= info.nz)
        if bad.any():
            raise InputError(
                f"{path}: image index {int(idx[bad][0])} (0-based) out of range; "
                f"the stack has {info.nz} images"
            )
        images = np.asarray(mm[idx], dtype=np.float32)
    finally:
        del mm
    _check_finite_data(path, images, "image, row, column", idx)
    return images


def _stack_header(nx: int, ny: int, nz: int, mode: int, pixel_size: float, stats) -> np.recarray:
    """An MRC2014 image-stack header (``ispg = 0``, ``mz = 1``), native byte order."""
    h = np.zeros(shape=(), dtype=HEADER_DTYPE).view(np.recarray)
    h.map = b"MAP "
    h.nversion = 20141
    h.machst = mrcfile.utils.machine_stamp_from_byte_order(h.mode.dtype.byteorder)
    h.nx, h.ny, h.nz = nx, ny, nz
    h.mode = mode
    h.mx, h.my, h.mz = nx, ny, 1
    h.cella.x, h.cella.y, h.cella.z = nx * pixel_size, ny * pixel_size, pixel_size
    h.cellb.alpha = h.cellb.beta = h.cellb.gamma = 90.0
    h.mapc, h.mapr, h.maps = 1, 2, 3
    h.ispg = _IMAGE_STACK_SPACEGROUP
    h.nsymbt = 0
    dmin, dmax, dmean, rms = stats
    h.dmin, h.dmax, h.dmean, h.rms = dmin, dmax, dmean, rms
    h.nlabl = 1
    h.label[0] = b"Created by cryoensemble".ljust(80)
    return h


class MrcStackWriter:
    """Write an MRC image stack incrementally, memory-bounded, atomically.

    Usage::

        with MrcStackWriter("particles.mrcs", box_size=128, pixel_size=1.1) as w:
            for batch in batches:
                w.append(batch)          # (b, box, box) or (box, box)

    Images are appended with plain file writes after a placeholder header; only running statistics
    are kept in memory. On a clean exit the header (``nz``, min/max/mean/rms) is written and the
    temporary file is renamed onto ``path``; on an exception the temporary file is removed and
    nothing is left behind. If ``n_images`` is given, exactly that many images must be appended.

    Arguments:
        path: the stack to write (its directory must exist).
        box_size: image side in pixels.
        pixel_size: pixel size in Angstrom (written to the header).
        dtype: the stored data type (float32 by default).
        n_images: if given, the exact number of images that must be appended.
        overwrite: replace an existing file.
    """

    def __init__(
        self,
        path,
        box_size: int,
        pixel_size: float,
        dtype=np.float32,
        n_images: int | None = None,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        if int(box_size) != box_size or box_size <= 0:
            raise InputError(f"{self.path}: box_size must be a positive integer, got {box_size!r}")
        self.box_size = int(box_size)
        self.pixel_size = check_positive(f"{self.path}: pixel_size", pixel_size)
        self.dtype = np.dtype(dtype)
        try:
            self._mode = mrcfile.utils.mode_from_dtype(self.dtype)
        except ValueError:
            raise InputError(f"{self.path}: dtype {self.dtype} cannot be stored in MRC") from None
        if n_images is not None and (int(n_images) != n_images or n_images < 0):
            raise InputError(f"{self.path}: n_images must be an integer >= 0, got {n_images!r}")
        self.n_images = None if n_images is None else int(n_images)
        self.overwrite = overwrite
        self.count = 0
        self._file: BinaryIO | None = None
        self._tmp: Path | None = None
        self._min = np.inf
        self._max = -np.inf
        self._mean = 0.0
        self._m2 = 0.0

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> MrcStackWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Start the temporary file (done by ``with``); refuses an existing ``path``."""
        _check_destination(self.path, self.overwrite)
        self._tmp = _temp_path(self.path)
        file = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        file.write(b"\0" * _HEADER_BYTES)
        self._file = file

    def append(self, images: ArrayLike) -> None:
        """Append one image ``(box, box)`` or a batch ``(b, box, box)``.

        Arguments:
            images: the image(s), converted to the writer's dtype.
        """
        if self._file is None:
            raise RuntimeError("MrcStackWriter is not open; use it as a context manager")
        arr = np.asarray(images)
        if arr.ndim == 2:
            arr = arr[None]
        n = self.box_size
        if arr.ndim != 3 or arr.shape[1:] != (n, n):
            raise InputError(
                f"{self.path}: images must have shape (b, {n}, {n}) or ({n}, {n}), got {arr.shape}"
            )
        if self.n_images is not None and self.count + arr.shape[0] > self.n_images:
            raise InputError(
                f"{self.path}: more than the announced n_images = {self.n_images} images appended"
            )
        if arr.shape[0] == 0:
            return
        out = np.ascontiguousarray(arr, dtype=self.dtype)
        if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
            raise InputError(f"{self.path}: images contain NaN or infinite values")
        self._file.write(out.tobytes())
        # Chan et al. parallel update of mean and sum of squared deviations (float64).
        v = out.astype(np.float64)
        nb = v.size
        mb = float(v.mean())
        m2b = float(((v - mb) ** 2).sum())
        na = self.count * n * n
        tot = na + nb
        delta = mb - self._mean
        self._mean += delta * nb / tot
        self._m2 += m2b + delta**2 * na * nb / tot
        self._min = min(self._min, float(v.min()))
        self._max = max(self._max, float(v.max()))
        self.count += arr.shape[0]

    def close(self) -> Path:
        """Write the final header and rename the temporary file onto ``path``."""
        if self._file is None or self._tmp is None:
            return self.path
        try:
            if self.n_images is not None and self.count != self.n_images:
                raise InputError(
                    f"{self.path}: {self.count} images appended, n_images = {self.n_images} "
                    "announced"
                )
            if self.count == 0:
                raise InputError(f"{self.path}: no images appended; an MRC stack needs >= 1")
            npix = self.count * self.box_size**2
            rms = float(np.sqrt(self._m2 / npix))
            header = _stack_header(
                self.box_size,
                self.box_size,
                self.count,
                self._mode,
                self.pixel_size,
                (self._min, self._max, self._mean, rms),
            )
            self._file.seek(0)
            self._file.write(header.tobytes())
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if self.path.exists() and not self.overwrite:
                raise InputError(f"{self.path}: file exists; pass overwrite=True to replace it")
            os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
