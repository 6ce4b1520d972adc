"""Shared test fixtures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import pytest
from hypothesis import settings

# Property-based tests: JIT compilation makes a function's first example slow, so no per-example
# deadline; a modest number of examples keeps CI (2 cores) within its budget.
settings.register_profile("cryoensemble", deadline=None, max_examples=50)
settings.load_profile("cryoensemble")

DATA = Path(__file__).resolve().parents[1] / "src" / "cryoensemble" / "data"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    """Import ``examples/<name>.py`` once (the examples are scripts, not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def toy():
    """The four-atom toy example (``examples/four_atom_toy.py``)."""
    return load_example("four_atom_toy")


@pytest.fixture(scope="module")
def toy_data(toy):
    """600 particles of the four-atom toy (seed 1)."""
    return toy.simulate_toy(600, seed=1)


@pytest.fixture
def x64():
    """Run the test with 64-bit JAX arrays (restored afterwards)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def data_dir() -> Path:
    """The example data shipped with the package."""
    return DATA
