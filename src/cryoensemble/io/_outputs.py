"""Output folders and files that appear whole or not at all, and provenance records.

Every command writes through :func:`atomic_output_dir` / :func:`atomic_output_file` (built in a
hidden sibling, renamed into place at the end) and records :func:`write_provenance`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from cryoensemble.errors import InputError

__all__ = [
    "atomic_output_dir",
    "atomic_output_file",
    "check_output_target",
    "versions",
    "write_provenance",
]


def check_output_target(out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse an existing output path unless ``overwrite``; raise before any work is done.

    Arguments:
        out: the output file or folder.
        overwrite: allow replacing an existing ``out``.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"output {out} already exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``out``; on success it replaces ``out`` in one rename.

    On any exception (including Ctrl-C) the temporary folder is removed and ``out`` is untouched.

    Arguments:
        out: the output folder (its parents are created).
        overwrite: replace an existing ``out`` (else :class:`InputError` before any work).
    """
    out = Path(out)
    check_output_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; results should be readable like any file
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


@contextlib.contextmanager
def atomic_output_file(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file path next to ``out``; renamed onto ``out`` on success only.

    Arguments:
        out: the output file (its parents are created).
        overwrite: replace an existing ``out`` (else :class:`InputError` before any work).
    """
    out = Path(out)
    check_output_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape the results."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in [
        "cryoensemble",
        "jax",
        "jaxlib",
        "equinox",
        "numpy",
        "scipy",
        "gemmi",
        "mrcfile",
        "starfile",
    ]:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def write_provenance(
    folder: str | os.PathLike, command: str, config: dict[str, Any], seed: int | None
) -> Path:
    """Write ``provenance.json``: the command, its effective config, the seed and the versions.

    Arguments:
        folder: the output folder (must exist).
        command: the command or workflow name.
        config: its effective configuration (JSON-serialisable; other values as strings).
        seed: the random seed, or None.

    Returns:
        The path of ``provenance.json``.
    """
    record = {
        "command": command,
        "argv": sys.argv,
        "config": config,
        "seed": seed,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(folder) / "provenance.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path
