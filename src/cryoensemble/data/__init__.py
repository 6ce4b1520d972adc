"""Structures bundled with the package: adenylate kinase open/closed (CHARMM naming), tri-alanine."""

from importlib.resources import files
from pathlib import Path

__all__ = ["bundled"]


def bundled(name: str) -> Path:
    """Path of a bundled data file, e.g. ``bundled("adk_open.pdb")``.

    Arguments:
        name: a path below the data folder, e.g. ``adk_open.pdb``, ``adk_closed.pdb``
            (adenylate kinase, CHARMM atom names) or a file of ``trialanine/``.
    """
    return Path(str(files("cryoensemble.data") / name))
