"""Fuzz the particle STAR reader: only InputError (one line naming the file) ever escapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from corruption import BUDGETS, TEXT_MUTATIONS, assert_budget, corrupted, run_fuzz
from hypothesis import strategies as st

from cryoensemble.io import MrcStackWriter, read_particles

OPTICS = (
    "data_optics\nloop_\n_rlnOpticsGroup\n_rlnOpticsGroupName\n_rlnVoltage\n"
    "_rlnSphericalAberration\n_rlnAmplitudeContrast\n_rlnImagePixelSize\n_rlnImageSize\n"
    "_rlnImageDimensionality\n1 opticsGroup1 300 2.7 0.1 1.5 8 2\n2 opticsGroup2 200 2.0 0.07 1.5 8 2\n"
)
PARTICLE_LABELS = (
    "rlnImageName rlnMicrographName rlnAngleRot rlnAngleTilt rlnAnglePsi rlnOriginXAngst "
    "rlnOriginYAngst rlnDefocusU rlnDefocusV rlnDefocusAngle rlnCtfBfactor rlnOpticsGroup "
    "rlnRandomSubset"
).split()
PARTICLE_ROWS = [
    "000001@s.mrcs mic1.mrc 10.0 20.0 30.0 1.5 -0.5 12000 11800 5.0 0 1 1",
    "000002@s.mrcs mic1.mrc -170.5 90.0 0.0 0 0 15000.5 15000.5 0 0 2 2",
    "000003@s.mrcs mic2.mrc 0 179.9 359.0 -3 3 9000 9100 45 10 1 1",
]
RELION30 = (
    "data_\nloop_\n_rlnImageName\n_rlnDefocusU\n_rlnVoltage\n_rlnSphericalAberration\n"
    "_rlnAmplitudeContrast\n_rlnDetectorPixelSize\n_rlnMagnification\n_rlnOriginX\n"
    "_rlnOriginY\n_rlnAngleRot\n"
    "1@s.mrcs 10000 300 2.7 0.1 5.0 33333.3 1 2 10\n"
    "2@s.mrcs 11000 300 2.7 0.1 5.0 33333.3 -1 0 20\n"
)
KEY_VALUE_OPTICS = (
    "data_optics\n_rlnOpticsGroup 1\n_rlnVoltage 300\n_rlnImagePixelSize 1.5\n"
    "_rlnImageSize 8\n\ndata_particles\nloop_\n_rlnImageName\n_rlnDefocusU\n"
    "000001@s.mrcs 10000\n000003@s.mrcs 20000\n"
)


def particles_text(labels: list[str], rows: list[str]) -> str:
    return (
        f"# version 30001\n{OPTICS}\n# version 30001\ndata_particles\nloop_\n"
        + "".join(f"_{label} #{i + 1}\n" for i, label in enumerate(labels))
        + "\n".join(rows)
        + "\n"
    )


ORIGINALS = [
    particles_text(PARTICLE_LABELS, PARTICLE_ROWS).encode(),
    RELION30.encode(),
    KEY_VALUE_OPTICS.encode(),
]


@st.composite
def permuted_columns(draw) -> bytes:
    """A valid file with the particle columns in another order (labels and values alike)."""
    order = draw(st.permutations(range(len(PARTICLE_LABELS))))
    labels = [PARTICLE_LABELS[i] for i in order]
    rows = [" ".join(row.split()[i] for i in order) for row in PARTICLE_ROWS]
    return particles_text(labels, rows).encode()


def _permute(draw, data: bytes) -> bytes:
    return draw(permuted_columns())


@pytest.fixture
def star_dir(tmp_path):
    """A folder with the stack ``s.mrcs`` (3 images of 8 x 8 at 1.5 A) the files name."""
    images = np.random.default_rng(0).normal(size=(3, 8, 8))
    with MrcStackWriter(tmp_path / "s.mrcs", box_size=8, pixel_size=1.5) as w:
        w.append(images)
    return tmp_path


def _check(folder):
    path = folder / "fuzz.star"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = read_particles(path)
        table.image_locations()
        assert np.all(np.isfinite(table.pixel_sizes()))

    return check


def test_originals_and_permutations_read(star_dir):
    check = _check(star_dir)
    for data in ORIGINALS:
        check(data)
    counts = run_fuzz(permuted_columns(), check, 20, "fuzz.star")
    assert counts["ok"] == 20 and counts["refused"] == 0


@pytest.mark.parametrize("n_examples", BUDGETS)
def test_fuzz_star(star_dir, n_examples):
    strategy = corrupted(ORIGINALS, [*TEXT_MUTATIONS, _permute])
    counts = run_fuzz(strategy, _check(star_dir), n_examples, "fuzz.star")
    assert_budget(counts, n_examples)
