"""cryoensemble: differentiable cryo-EM image simulation and ensemble inference in JAX.

The main user-facing names are available from the top level, e.g.::

    import cryoensemble as ce

    model = ce.read_structure(ce.bundled("adk_open.pdb"))
    atoms = ce.gaussian_atoms(model)

They are imported lazily (PEP 562), on first use: ``import cryoensemble`` (and the command line's
``--help``) does not start JAX. Each name's home is its package (``cryoensemble.structure``,
``cryoensemble.imaging``, ...), which documents it; the workflows (one per command) are the
subpackages of :mod:`cryoensemble.workflows`, each with its configuration and ``run``::

    from cryoensemble.workflows import simulate

    simulate.run(simulate.SimulateConfig(...), "out/")

See ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("cryoensemble")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

# name -> the package that defines it (its one home; the top level only re-exports).
_LAZY: dict[str, str] = {
    "bundled": "cryoensemble.data",
    "CryoEnsembleError": "cryoensemble.errors",
    "InputError": "cryoensemble.errors",
    "ConfigError": "cryoensemble.errors",
    "euler_to_matrix": "cryoensemble.pose",
    "matrix_to_euler": "cryoensemble.pose",
    "random_rotations": "cryoensemble.pose",
    "superpose": "cryoensemble.pose",
    "superpose_model": "cryoensemble.pose",
    "AtomicModel": "cryoensemble.structure",
    "read_structure": "cryoensemble.structure",
    "write_pdb": "cryoensemble.structure",
    "GaussianAtoms": "cryoensemble.scattering",
    "gaussian_atoms": "cryoensemble.scattering",
    "CTFParams": "cryoensemble.optics",
    "ImagingConfig": "cryoensemble.imaging",
    "simulate_images": "cryoensemble.imaging",
    "simulate_images_jit": "cryoensemble.imaging",
    "likelihood_matrix": "cryoensemble.inference",
    "fit_weights_em": "cryoensemble.inference",
    "ParticleDataset": "cryoensemble.io",
    "read_particles": "cryoensemble.io",
    "write_particles": "cryoensemble.io",
    "read_map": "cryoensemble.io",
    "write_map": "cryoensemble.io",
}

# Subpackages reachable as attributes (``cryoensemble.workflows.simulate`` etc. live below).
_SUBPACKAGES = (
    "data",
    "ensemble",
    "errors",
    "imaging",
    "inference",
    "io",
    "ndimage",
    "noise",
    "optics",
    "parallel",
    "pose",
    "posesearch",
    "progress",
    "projection",
    "scattering",
    "structure",
    "workflows",
)

__all__ = ["__version__", *_LAZY, *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    """Import a top-level name (or a submodule) on first access (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    try:
        # Submodules, private ones included.
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
