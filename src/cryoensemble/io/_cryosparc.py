"""cryoSPARC particle files (``.cs``), read into the same :class:`ParticleTable` as a STAR file.

A ``.cs`` file is a numpy structured array saved with ``np.save`` (one row per particle, fields
named ``group/name``). The conversion to RELION conventions follows pyem's ``csparc2star`` (the
reference converter, also used by cryoDRGN and cryoJAX); see ``docs/cryosparc.md``:

* ``blob/path`` (bytes, a leading ``>`` means "relative to the project directory") and the
  0-based ``blob/idx`` -> ``rlnImageName = (idx + 1)@path`` (1-based);
* ``blob/shape`` ``[ny, nx]`` -> ``rlnImageSize`` (square images only); ``blob/psize_A`` ->
  ``rlnImagePixelSize`` (A);
* ``ctf/accel_kv``, ``ctf/cs_mm``, ``ctf/amp_contrast`` -> ``rlnVoltage`` (kV),
  ``rlnSphericalAberration`` (mm), ``rlnAmplitudeContrast``, grouped into optics groups;
* ``ctf/df1_A``, ``ctf/df2_A`` -> ``rlnDefocusU/V`` (A); ``ctf/df_angle_rad`` and
  ``ctf/phase_shift_rad`` (radians) -> ``rlnDefocusAngle``, ``rlnPhaseShift`` (degrees);
  ``ctf/bfactor`` (A^2) -> ``rlnCtfBfactor``; ``ctf/scale`` -> ``rlnCtfScalefactor``;
* ``alignments3D/pose``: the rotation vector (axis times angle, radians) of the TRANSPOSE of
  RELION's matrix ``A`` (so ``A = exp([v]_x)^T``) -> ``rlnAngleRot/Tilt/Psi`` (degrees);
* ``alignments3D/shift`` (pixels of ``alignments3D/psize_A``, same sign as RELION's origin) ->
  ``rlnOriginX/YAngst = shift * psize`` (A).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Float

from cryoensemble.errors import InputError
from cryoensemble.io._star import ParticleTable, _from_relion30, _normalise, format_image_name
from cryoensemble.pose._euler import matrix_to_euler, quaternion_to_matrix

__all__ = ["CRYOSPARC_FIELDS", "cryosparc_pose_to_euler", "read_cryosparc"]

#: Fields every particle ``.cs`` must have (images and CTF).
CRYOSPARC_FIELDS = [
    "blob/path",
    "blob/idx",
    "blob/shape",
    "blob/psize_A",
    "ctf/accel_kv",
    "ctf/cs_mm",
    "ctf/amp_contrast",
    "ctf/df1_A",
    "ctf/df2_A",
    "ctf/df_angle_rad",
]
_POSE_FIELDS = ["alignments3D/pose", "alignments3D/shift"]
# Optional per-particle values and their RELION defaults (no phase plate, no envelope).
_OPTIONAL = {"ctf/phase_shift_rad": 0.0, "ctf/bfactor": 0.0, "ctf/scale": 1.0}


def read_cryosparc(
    path: str | os.PathLike,
    project_dir: str | os.PathLike | None = None,
    *,
    require_poses: bool = False,
    check_stacks: bool = True,
) -> ParticleTable:
    """Read a cryoSPARC particle ``.cs`` file into a :class:`ParticleTable` in RELION form.

    The table is the one :func:`read_particles` returns for the same particles written as a
    RELION 3.1 STAR file (conventions in the module docstring); stack paths in ``rlnImageName``
    are absolute. Every problem raises one :class:`InputError` naming the file and the field.

    Arguments:
        path: the ``.cs`` file.
        project_dir: the cryoSPARC project directory that ``blob/path`` is relative to. Default:
            the first of the working directory, the folder of the ``.cs`` file and its parent (a
            job folder's parent is the project) that holds the stack.
        require_poses: if true, ``alignments3D/pose`` and ``alignments3D/shift`` must be present
            (else the angles and shifts default to 0, as for a STAR file without poses).
        check_stacks: if true, every stack must exist (one clear error otherwise).

    Returns:
        The particles, ``path`` set to the ``.cs`` file.
    """
    path = Path(path)
    src = str(path)
    data = _load(path)
    _check_fields(data, src, CRYOSPARC_FIELDS)
    if require_poses:
        _check_fields(data, src, _POSE_FIELDS, why="poses are required")
    _check_finite(data, src)
    box = _box_sizes(data, src)
    names = _image_names(data, path, project_dir, check_stacks)
    px = data["blob/psize_A"].astype(np.float64)
    frame = pd.DataFrame(
        {
            "rlnImageName": names,
            **_pose_columns(data, px),
            **_ctf_columns(data),
            "rlnImagePixelSize": px,
            "rlnImageSize": box,
        }
    )
    # Per-particle optics, as in a RELION 3.0 file: group them the same way.
    optics, particles = _from_relion30(frame, src, None, "particles")
    optics, particles = _normalise(
        optics,
        particles,
        src=src,
        path=None,
        optics_block=None,
        particles_block=None,
        require_poses=False,
        star_path_for_images=None,
    )
    return ParticleTable(optics=optics, particles=particles, path=path.absolute())


def cryosparc_pose_to_euler(
    pose: Float[np.ndarray, "n 3"],
) -> tuple[Float[np.ndarray, " n"], Float[np.ndarray, " n"], Float[np.ndarray, " n"]]:
    """RELION Euler angles (rot, tilt, psi) in degrees of cryoSPARC ``alignments3D/pose``.

    cryoSPARC stores the rotation vector ``v`` (unit axis times angle, radians) of the transpose
    of RELION's matrix ``A`` (:func:`cryoensemble.pose.euler_to_matrix`): ``A = exp([v]_x)^T``,
    as pyem's ``csparc2star``, cryoDRGN and cryoJAX read it.

    Arguments:
        pose: rotation vectors (n, 3), radians.

    Returns:
        ``(rot, tilt, psi)``, each (n,) float64 in degrees.
    """
    v = np.asarray(pose, np.float64).reshape(-1, 3)
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    # Unit quaternion (cos(t/2), sin(t/2) v/t); sin(t/2)/t = sinc(t/2pi)/2 stays finite at t = 0.
    q = np.concatenate([np.cos(theta / 2), 0.5 * np.sinc(theta / (2 * np.pi)) * v], axis=-1)
    r = quaternion_to_matrix(jnp.asarray(q, jnp.float32))
    angles = matrix_to_euler(jnp.swapaxes(r, -1, -2))
    rot, tilt, psi = (np.asarray(a, np.float64) for a in angles)
    return rot, tilt, psi


# --------------------------------------------------------------------------------------------
# reading and validating the array
# --------------------------------------------------------------------------------------------
def _load(path: Path) -> np.ndarray:
    """The structured array of ``path``; InputError for a missing or non-.cs file."""
    if not path.is_file():
        raise InputError(f"{path}: cryoSPARC .cs file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises ValueError/OSError/EOFError on foreign files
        raise InputError(
            f"{path}: not a cryoSPARC .cs file (a numpy structured array): {err}"
        ) from None
    if not isinstance(data, np.ndarray) or data.dtype.names is None or data.ndim != 1:
        raise InputError(f"{path}: not a cryoSPARC .cs file (no named fields)")
    if len(data) == 0:
        raise InputError(f"{path}: the .cs file has no particles")
    return data


def _names(data: np.ndarray) -> tuple[str, ...]:
    """The field names of a structured array (none for a plain array)."""
    return data.dtype.names or ()


def _check_fields(data: np.ndarray, src: str, fields: list[str], why: str = "") -> None:
    """InputError naming the first of ``fields`` that ``data`` lacks."""
    missing = [f for f in fields if f not in _names(data)]
    if missing:
        reason = f" ({why})" if why else ""
        hint = ""
        if missing[0].startswith("alignments3D/"):
            hint = "; use the particles .cs of a 3-D refinement job, which carries the poses"
        raise InputError(f"{src}: field {missing[0]} is missing{reason}{hint}")


def _check_finite(data: np.ndarray, src: str) -> None:
    """InputError naming the first numeric field with a NaN or infinite value, and its row."""
    for name in _names(data):
        values = data[name]
        if values.dtype.kind != "f":
            continue
        bad = ~np.isfinite(values.reshape(len(data), -1)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"{src}: field {name}, row {row + 1}: value {values[row]} not finite")


def _box_sizes(data: np.ndarray, src: str) -> np.ndarray:
    """Box size in pixels of each particle from ``blob/shape`` ``[ny, nx]`` (square only)."""
    shape = np.asarray(data["blob/shape"]).reshape(len(data), -1)
    if shape.shape[1] != 2:
        raise InputError(f"{src}: field blob/shape has {shape.shape[1]} values per row, not 2")
    bad = shape[:, 0] != shape[:, 1]
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        ny, nx = (int(s) for s in shape[row])
        raise InputError(
            f"{src}: field blob/shape, row {row + 1}: images are {nx} x {ny} pixels; only square "
            "images are supported"
        )
    return shape[:, 0].astype(np.int64)


def _image_names(
    data: np.ndarray, path: Path, project_dir: str | os.PathLike | None, check: bool
) -> list[str]:
    """RELION image names ``(idx + 1)@/absolute/stack`` of every particle."""
    src = str(path)
    idx = np.asarray(data["blob/idx"])
    if idx.dtype.kind not in "iu" or (idx < 0).any():
        row = int(np.flatnonzero(idx < 0)[0]) if idx.dtype.kind in "iu" else 0
        raise InputError(
            f"{src}: field blob/idx, row {row + 1}: {idx[row]!r} is not a 0-based index >= 0"
        )
    raw = [_decode(p, src, row) for row, p in enumerate(data["blob/path"])]
    resolved: dict[str, Path] = {}
    for row, stack in enumerate(raw):
        if stack not in resolved:
            resolved[stack] = _resolve_stack(stack, path, project_dir, check, row)
    return [format_image_name(i + 1, resolved[s]) for i, s in zip(idx.tolist(), raw, strict=True)]


def _decode(value, src: str, row: int) -> str:
    """A ``blob/path`` entry as text (cryoSPARC stores bytes)."""
    try:
        text = value.decode() if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise InputError(f"{src}: field blob/path, row {row + 1}: not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"{src}: field blob/path, row {row + 1}: empty stack path")
    return text.strip()


def _resolve_stack(
    stack: str, path: Path, project_dir: str | os.PathLike | None, check: bool, row: int
) -> Path:
    """Absolute path of a ``blob/path`` stack (``>`` prefix: relative to the project)."""
    rel = Path(stack[1:] if stack.startswith(">") else stack)
    if rel.is_absolute():
        candidates = [rel]
    elif project_dir is not None:
        candidates = [Path(project_dir).absolute() / rel]
    else:
        here = path.absolute().parent
        candidates = [Path.cwd() / rel, here / rel, here.parent / rel]
    for c in candidates:
        if c.is_file():
            return c
    if check:
        looked = ", ".join(str(c.parent) for c in candidates)
        raise InputError(
            f"{path}: field blob/path, row {row + 1}: stack {stack} not found (looked in "
            f"{looked}; pass the cryoSPARC project directory as project_dir)"
        )
    return candidates[0]


# --------------------------------------------------------------------------------------------
# columns in RELION conventions
# --------------------------------------------------------------------------------------------
def _pose_columns(data: np.ndarray, px: np.ndarray) -> dict[str, np.ndarray]:
    """Euler angles (deg) and origins (A) when the file has a 3-D alignment, else nothing."""
    cols: dict[str, np.ndarray] = {}
    names = _names(data)
    if "alignments3D/pose" in names:
        rot, tilt, psi = cryosparc_pose_to_euler(data["alignments3D/pose"])
        cols.update(rlnAngleRot=rot, rlnAngleTilt=tilt, rlnAnglePsi=psi)
    if "alignments3D/shift" in names:
        # Shifts are in pixels of the refinement, which may differ from the blob's.
        apx = data["alignments3D/psize_A"] if "alignments3D/psize_A" in names else px
        shift = np.asarray(data["alignments3D/shift"], np.float64).reshape(len(data), 2)
        scale = np.asarray(apx, np.float64)
        cols.update(rlnOriginXAngst=shift[:, 0] * scale, rlnOriginYAngst=shift[:, 1] * scale)
    return cols


def _ctf_columns(data: np.ndarray) -> dict[str, np.ndarray]:
    """Per-particle CTF and optics values in RELION units (angles in degrees)."""
    f = lambda name: np.asarray(data[name], np.float64)
    opt = {k: f(k) if k in _names(data) else np.full(len(data), v) for k, v in _OPTIONAL.items()}
    return {
        "rlnDefocusU": f("ctf/df1_A"),
        "rlnDefocusV": f("ctf/df2_A"),
        "rlnDefocusAngle": np.rad2deg(f("ctf/df_angle_rad")),
        "rlnPhaseShift": np.rad2deg(opt["ctf/phase_shift_rad"]),
        "rlnCtfBfactor": opt["ctf/bfactor"],
        "rlnCtfScalefactor": opt["ctf/scale"],
        "rlnVoltage": f("ctf/accel_kv"),
        "rlnSphericalAberration": f("ctf/cs_mm"),
        "rlnAmplitudeContrast": f("ctf/amp_contrast"),
    }
