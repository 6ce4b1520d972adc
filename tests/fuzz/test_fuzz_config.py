"""Fuzz the configuration readers (YAML and TOML, simulate and optimize): only ConfigError /
InputError (one line naming the file) ever escapes."""

from __future__ import annotations

import pytest
from corruption import BUDGETS, assert_budget, corrupted, run_fuzz
from hypothesis import strategies as st

from cryoensemble.io import read_mapping
from cryoensemble.workflows.optimize import load_optimize_config
from cryoensemble.workflows.simulate import load_config

SIMULATE_YAML = """\
# a simulate configuration
structures:
  - a.pdb
  - b.pdb
weights: [0.7, 0.3]
n_particles: 20
box_size: 32
pixel_size: 1.5
voltage: 300.0
defocus_min: 10000.0
defocus_max: 20000.0
shift_max: 2.0
noise: gaussian
snr: 0.1
selection: chain:A
center: each
seed: 3
gallery: false
"""
SIMULATE_TOML = """\
structures = ["a.pdb", "b.pdb"]
weights = [0.7, 0.3]
n_particles = 20
box_size = 32
pixel_size = 1.5
noise = "poisson"
dose = 50.0
apply_ctf = true
center = "first"
"""
OPTIMIZE_YAML = """\
walkers: [a.pdb, a.pdb, b.pdb]
particles: particles.star
reference: a.pdb
selection: calpha
center: true
pad_factor: 2.0
projector:
  kind: langevin
"""
OPTIMIZE_TOML = """\
walkers = ["a.pdb", "b.pdb"]
particles = "particles.star"
invert_contrast = false
chunk_size = 4

[projector]
kind = "langevin"
"""
ORIGINALS = {
    ("simulate", "yaml"): SIMULATE_YAML,
    ("simulate", "toml"): SIMULATE_TOML,
    ("optimize", "yaml"): OPTIMIZE_YAML,
    ("optimize", "toml"): OPTIMIZE_TOML,
}
LOADERS = {"simulate": load_config, "optimize": load_optimize_config}


def _check(folder, workflow: str, suffix: str):
    path = folder / f"fuzz.{suffix}"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        assert isinstance(read_mapping(path), dict)
        LOADERS[workflow](path)

    return check


@pytest.mark.parametrize("workflow, suffix", list(ORIGINALS))
def test_originals_read(tmp_path, workflow, suffix):
    _check(tmp_path, workflow, suffix)(ORIGINALS[workflow, suffix].encode())


@pytest.mark.parametrize("suffix", ["yaml", "toml"])
@pytest.mark.parametrize("n_examples", BUDGETS)
def test_fuzz_config(tmp_path, suffix, n_examples):
    # one budget per format, shared by the two workflows' configurations
    keys = [key for key in ORIGINALS if key[1] == suffix]
    checks = {key: _check(tmp_path, *key) for key in keys}
    strategy = st.sampled_from(keys).flatmap(
        lambda key: st.tuples(st.just(key), corrupted([ORIGINALS[key].encode()]))
    )
    counts = run_fuzz(strategy, lambda ex: checks[ex[0]](ex[1]), n_examples, f"fuzz.{suffix}")
    assert_budget(counts, n_examples)
