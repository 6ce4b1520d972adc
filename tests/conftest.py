"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest
from hypothesis import settings

# Property-based tests: JIT compilation makes a function's first example slow, so no per-example
# deadline; a modest number of examples keeps CI (2 cores) within its budget.
settings.register_profile("cryoensemble", deadline=None, max_examples=50)
settings.load_profile("cryoensemble")

DATA = Path(__file__).resolve().parents[1] / "src" / "cryoensemble" / "data"


@pytest.fixture
def x64():
    """Run the test with 64-bit JAX arrays (restored afterwards)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def data_dir() -> Path:
    """The example data shipped with the package."""
    return DATA
