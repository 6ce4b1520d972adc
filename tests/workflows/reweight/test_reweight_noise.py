"""The default likelihood of reweight ("auto"): white-noise cryoensemble simulations keep the
marginal likelihood, other stacks are whitened by per-micrograph spectra; the choice is recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryoensemble.imaging import ArrayParticles
from cryoensemble.io import ParticleDataset, read_particles, write_particles
from cryoensemble.optics import CTFParams
from cryoensemble.structure import load_structures
from cryoensemble.workflows._noise import choose_likelihood, known_white_noise, noise_labels
from cryoensemble.workflows.reweight import ReweightConfig, reweight, summary_lines
from cryoensemble.workflows.simulate import SimulateConfig
from cryoensemble.workflows.simulate import run as simulate

DATA = Path(__file__).resolve().parents[3] / "src" / "cryoensemble" / "data"
FIT = dict(n_samples=200, burn_in=20, heldout_fraction=None, local_poses="off")


@pytest.fixture(scope="module")
def white_sim(tmp_path_factory):
    """A cryoensemble simulation with white Gaussian noise (60 particles, box 32)."""
    folder = tmp_path_factory.mktemp("noise") / "white"
    config = SimulateConfig(
        n_particles=60,
        box_size=32,
        pixel_size=4.0,
        structures=[DATA / "adk_open.pdb", DATA / "adk_closed.pdb"],
        weights=[0.7, 0.3],
        snr=0.5,
        seed=3,
    )
    return simulate(config, folder).star_path


@pytest.fixture(scope="module")
def models():
    return load_structures([DATA / "adk_open.pdb", DATA / "adk_closed.pdb"])


def _copy(star: Path, folder: Path) -> Path:
    """The simulation folder copied (stacks, STAR, summary) to ``folder``."""
    shutil.copytree(star.parent, folder)
    return folder / star.name


def test_auto_keeps_the_marginal_likelihood_for_white_simulations(white_sim, models):
    assert "white noise" in known_white_noise(ParticleDataset(white_sim))
    auto = reweight(white_sim, models, **FIT)
    assert auto.meta["likelihood"] == "marginal"
    assert auto.meta["likelihood_requested"] == "auto"
    assert "summary.json" in auto.meta["likelihood_reason"]
    marginal = reweight(white_sim, models, likelihood="marginal", **FIT)
    np.testing.assert_array_equal(auto.L, marginal.L)
    np.testing.assert_allclose(auto.map_weights, marginal.map_weights)
    assert any(line.startswith("likelihood: marginal (auto") for line in summary_lines(auto))
    assert ReweightConfig.model_fields["likelihood"].default == "auto"


def test_auto_whitens_structured_noise_and_records_it(white_sim, models, tmp_path):
    star = _copy(white_sim, tmp_path / "ice")
    summary = json.loads((star.parent / "summary.json").read_text())
    summary["config"]["ice_fraction"] = 0.5  # as a simulation with an ice background records
    (star.parent / "summary.json").write_text(json.dumps(summary))
    assert known_white_noise(ParticleDataset(star)) is None
    res = reweight(star, models, **FIT)
    assert res.meta["likelihood"] == "colored"
    assert "spectra" in res.meta["likelihood_reason"]
    assert res.meta["noise_spectra"] == 1 and res.meta["noise_groups"] == 1
    record = res.to_json()
    assert record["likelihood"] == "colored" and record["likelihood_requested"] == "auto"
    # white data: whitening by the (flat) estimated spectrum changes the weights very little
    marginal = reweight(white_sim, models, likelihood="marginal", **FIT)
    assert abs(res.map_weights[0] - marginal.map_weights[0]) < 0.05
    # --likelihood marginal turns it off
    off = reweight(star, models, likelihood="marginal", **FIT)
    assert off.meta["likelihood"] == "marginal" and off.meta["likelihood_reason"] == "requested"


def test_per_micrograph_spectra_from_the_star_file(white_sim, models, tmp_path):
    star = _copy(white_sim, tmp_path / "mics")
    table = read_particles(star)
    particles = table.particles.copy()
    particles["rlnMicrographName"] = [f"mic_{i % 6}.mrc" for i in range(len(particles))]
    mstar = write_particles(star.parent / "with_mics.star", (table.optics, particles))
    ds = ParticleDataset(mstar)
    groups, mics = noise_labels(ds)
    assert len(set(mics)) == 6 and len(groups) == len(ds)
    res = reweight(mstar, models, likelihood="colored", **FIT)
    assert res.meta["noise_spectra"] == 6
    assert np.all(np.isfinite(res.L))


def test_choice_for_in_memory_particles_and_pose_searches():
    ds = ArrayParticles(np.zeros((3, 16, 16), np.float32), CTFParams(), 2.0)
    assert known_white_noise(ds) is None
    assert choose_likelihood("auto", ds).kind == "colored"
    fallback = choose_likelihood("auto", ds, coloured_available=False)
    assert fallback.kind == "marginal" and "not available" in fallback.reason
    assert choose_likelihood("white", ds).record()["likelihood"] == "white"
