"""Structures bundled with the package (adenylate kinase open/closed, CHARMM naming)."""

from importlib.resources import files
from pathlib import Path


def bundled(name: str) -> Path:
    """Path of a bundled data file, e.g. ``bundled("adk_open.pdb")``."""
    return Path(str(files("cryoensemble.data") / name))
