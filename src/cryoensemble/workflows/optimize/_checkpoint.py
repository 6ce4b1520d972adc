"""Checkpoints of an ensemble optimisation: one ``checkpoint.npz`` written atomically.

Everything needed to continue a run exactly is in one file: the walkers' projector states (named
arrays ``walker<m>/<name>``), the iteration count, the numpy generator's state and the history
(JSON in the ``meta`` entry), and the recorded trajectory frames. The file is written to a
temporary file in the same folder and renamed over the previous checkpoint with ``os.replace``
(atomic on POSIX), so a crash at any moment leaves either the previous or the new checkpoint,
never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.io._config import to_jsonable

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "run_fingerprint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT_VERSION = 1


def run_fingerprint(
    settings: dict[str, Any], start: Float[ArrayLike, "m n 3"], n_particles: int
) -> str:
    """A short hash of what a resumed run must share with the interrupted one.

    Arguments:
        settings: the settings that must not change (JSON types).
        start: (M, n_atoms, 3) the walkers' starting positions, A.
        n_particles: the number of particles.
    """
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(np.asarray(start, np.float32)).tobytes())
    h.update(str(int(n_particles)).encode())
    return h.hexdigest()[:16]


def save_checkpoint(
    folder,
    *,
    iteration: int,
    walker_states: list[dict[str, np.ndarray]],
    rng_state: dict,
    history: list[dict],
    trajectory: np.ndarray,
    trajectory_iterations: list[int],
    fingerprint: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/checkpoint.npz`` atomically (temp file + ``os.replace``).

    Arguments:
        folder: the run's folder.
        iteration: outer iterations done.
        walker_states: each walker's projector state as named arrays.
        rng_state: the numpy generator's ``bit_generator.state``.
        history: the per-iteration records so far.
        trajectory: (F, M, n_atoms, 3) recorded walkers, A.
        trajectory_iterations: the outer iteration of every frame.
        fingerprint: :func:`run_fingerprint` of the run.
        extra: more JSON metadata.
    """
    folder = Path(folder)
    arrays: dict[str, np.ndarray] = {}
    for m, st in enumerate(walker_states):
        for name, value in st.items():
            arrays[f"walker{m}/{name}"] = np.asarray(value)
    arrays["trajectory"] = np.asarray(trajectory, np.float32)
    meta = {
        "format_version": FORMAT_VERSION,
        "iteration": int(iteration),
        "n_walkers": len(walker_states),
        "rng_state": rng_state,
        "history": history,
        "trajectory_iterations": [int(i) for i in trajectory_iterations],
        "fingerprint": fingerprint,
        "extra": extra or {},
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=to_jsonable).encode(), np.uint8)
    target = folder / CHECKPOINT_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{CHECKPOINT_NAME}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(folder, fingerprint: str | None = None) -> dict[str, Any]:
    """The checkpoint of ``folder``: meta fields plus ``walker_states`` and ``trajectory``.

    Arguments:
        folder: the run's folder.
        fingerprint: when given, the checkpoint must belong to a run with this
            :func:`run_fingerprint` (same settings and inputs), else :class:`InputError`.
    """
    path = Path(folder) / CHECKPOINT_NAME
    if not path.exists():
        raise InputError(f"{path}: no checkpoint to resume from (run without --resume)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(bytes(data.pop("meta")).decode())
    except Exception as err:
        raise InputError(f"{path}: cannot read the checkpoint ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: unsupported checkpoint format {meta.get('format_version')}")
    states: list[dict[str, np.ndarray]] = [{} for _ in range(meta["n_walkers"])]
    for key, value in data.items():
        if key.startswith("walker") and "/" in key:
            m, name = key[len("walker") :].split("/", 1)
            states[int(m)][name] = value
    meta["walker_states"] = states
    meta["trajectory"] = data["trajectory"]
    if fingerprint is not None and meta["fingerprint"] != fingerprint:
        raise InputError(
            f"{folder}: the checkpoint belongs to a run with other settings or inputs (only "
            "'iterations' may change when resuming); use --overwrite to start again"
        )
    return meta
