"""The likelihood matrix on disk: ``likelihood_matrix.npy``, ``particle_indices.npy`` and
``likelihood_matrix.json`` in one folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from cryoensemble.errors import InputError

__all__ = ["load_likelihood_matrix", "save_likelihood_matrix"]


def save_likelihood_matrix(
    folder: str | Path,
    L: ArrayLike,
    indices: ArrayLike | Sequence[int] | None = None,
    meta: dict | None = None,
) -> Path:
    """Write a likelihood matrix into ``folder``; returns the path of the ``.npy``.

    Arguments:
        folder: an existing folder.
        L: (n, M) log-likelihoods, saved as float32 ``likelihood_matrix.npy``.
        indices: (n,) 0-based rows of the STAR file (row i of L is particle indices[i]), saved
            as int64 ``particle_indices.npy``; default 0 .. n-1.
        meta: written to ``likelihood_matrix.json`` with the shape (kind, structure names, ...).
    """
    folder = Path(folder)
    L = np.asarray(L, np.float32)
    idx = np.arange(L.shape[0]) if indices is None else np.asarray(indices, np.int64)
    np.save(folder / "likelihood_matrix.npy", L)
    np.save(folder / "particle_indices.npy", idx)
    info = {"shape": list(L.shape), **(meta or {})}
    (folder / "likelihood_matrix.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return folder / "likelihood_matrix.npy"


def load_likelihood_matrix(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(L, particle indices) from a folder written by :func:`save_likelihood_matrix` or an
    ``.npy`` file (indices default to 0 .. n-1).

    Arguments:
        path: the folder or the ``.npy`` file.
    """
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
