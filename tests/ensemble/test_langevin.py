"""The pure-JAX Langevin projector, the elastic network and the rigid carrying of hydrogens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryoensemble.ensemble import (
    ElasticNetworkConfig,
    LangevinConfig,
    LangevinProjector,
    NoProjector,
    RigidCarry,
    build_elastic_network,
    load_user_energy,
)
from cryoensemble.ensemble._langevin import repulsion_pairs
from cryoensemble.errors import ConfigError
from cryoensemble.structure import read_structure
from cryoensemble.structure._model import selection_indices


def _rotation(angle_deg: float, axis=(0.0, 0.0, 1.0)) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.deg2rad(angle_deg) * np.asarray(axis)).as_matrix()


DATA = Path(__file__).resolve().parents[2] / "src" / "cryoensemble" / "data"


@pytest.fixture(scope="module")
def adk_calpha():
    m = read_structure(DATA / "adk_closed.pdb")
    sel = selection_indices(m, "calpha")
    return m, sel


def test_network_splits_local_springs_and_breakable_contacts(adk_calpha):
    m, sel = adk_calpha
    x = m.positions[sel]
    p = ElasticNetworkConfig(local_cutoff=10.0, sequence_separation=3, contact_cutoff=9.0)
    net = build_elastic_network(x, m.residue_ids[sel], m.chain_ids[sel], p)
    res = m.residue_ids[sel]
    dl = np.abs(res[net.local_pairs[:, 0]] - res[net.local_pairs[:, 1]])
    dc = np.abs(res[net.contact_pairs[:, 0]] - res[net.contact_pairs[:, 1]])
    assert len(net.local_pairs) > 0 and len(net.contact_pairs) > 0
    assert dl.max() <= 3 and dc.min() > 3
    assert net.local_d0.max() <= 10.0 and net.contact_d0.max() <= 9.0
    # every CA-CA virtual bond (i, i+1) is a local spring at about 3.8 A
    bonds = net.local_pairs[dl == 1]
    assert len(bonds) == len(sel) - 1
    d = net.local_d0[dl == 1]
    assert abs(np.median(d) - 3.8) < 0.05 and d.min() > 2.8 and d.max() < 4.0  # (one cis-Pro)


def test_energy_is_minimal_and_force_free_at_the_reference(adk_calpha):
    m, sel = adk_calpha
    x = m.positions[sel]
    p = ElasticNetworkConfig(local_cutoff=10, contact_cutoff=9, repulsion_distance=0)
    net = build_elastic_network(x, m.residue_ids[sel], m.chain_ids[sel], p)
    proj = LangevinProjector(LangevinConfig(elastic=p), net)
    e0 = proj.energy(x)
    np.testing.assert_allclose(e0, -p.contact_depth * len(net.contact_pairs), rtol=1e-4)
    rng = np.random.default_rng(0)
    assert proj.energy(x + rng.normal(0, 0.3, x.shape)) > e0
    # rigid motions cost nothing
    np.testing.assert_allclose(proj.energy(x @ _rotation(30).T + 5.0), e0, rtol=1e-4)


def test_zero_temperature_dynamics_relaxes_exponentially_to_the_target():
    # no energy, T = 0: x_n - target = (1 - h k)^n (x_0 - target), exactly
    cfg = LangevinConfig(n_steps=50, step=0.01, k_target=5.0, temperature=0.0, energy="none")
    proj = LangevinProjector(cfg, user_energy=lambda x: 0.0 * x.sum())
    x0 = np.zeros((4, 3))
    target = np.arange(12.0).reshape(4, 3)
    st = proj.init_state(x0, 0, seed=1)
    st2, new = proj.project(st, target, np.arange(4))
    expect = target + (1 - 0.01 * 5.0) ** 50 * (x0 - target)
    np.testing.assert_allclose(new, expect, rtol=1e-4, atol=1e-4)


def test_thermal_noise_has_the_right_size():
    # free diffusion (k = 0, no energy but a flat user term): variance 2 h kT per step per axis
    cfg = LangevinConfig(n_steps=100, step=1e-3, k_target=0.0, temperature=300.0, energy="none")
    proj = LangevinProjector(cfg, user_energy=lambda x: 0.0 * x.sum())
    x0 = np.zeros((2000, 3))
    st = proj.init_state(x0, 0, seed=3)
    _, new = proj.project(st, x0, np.arange(2000))
    expected = np.sqrt(2 * 1e-3 * cfg.kT * 100)
    assert abs(new.std() / expected - 1) < 0.05


def test_projection_is_deterministic_given_the_state_and_survives_a_round_trip(adk_calpha):
    m, sel = adk_calpha
    x = m.positions[sel]
    net = build_elastic_network(x, m.residue_ids[sel], m.chain_ids[sel])
    proj = LangevinProjector(LangevinConfig(n_steps=20), [net])
    st = proj.init_state(x, walker=0, seed=7)
    target = x + 1.0
    a_state, a = proj.project(st, target, np.arange(len(sel)))
    st_copy = proj.load_state({k: v.copy() for k, v in proj.state_dict(st).items()})
    b_state, b = proj.project(st_copy, target, np.arange(len(sel)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a_state.key, b_state.key)
    assert not np.array_equal(a_state.key, st.key)  # the stream advanced
    # another walker has another stream
    _, c = proj.project(proj.init_state(x, walker=1, seed=7), target, np.arange(len(sel)))
    assert not np.allclose(a, c)


def test_elastic_network_follows_a_domain_motion_and_keeps_local_geometry(adk_calpha):
    """Target: the open state (superposed on closed, 6.9 A away); the projected walker follows it
    while the CA-CA bonds keep their length."""
    from cryoensemble.pose import superpose

    m, sel = adk_calpha
    x = m.positions[sel]
    res = m.residue_ids[sel]
    opened = read_structure(DATA / "adk_open.pdb").positions[sel]
    target = np.asarray(superpose(opened, x, method="kabsch")[0], np.float64)
    p = ElasticNetworkConfig(local_cutoff=10, sequence_separation=3, contact_cutoff=9)
    net = build_elastic_network(x, res, m.chain_ids[sel], p)
    proj = LangevinProjector(LangevinConfig(n_steps=400, step=2e-3, k_target=20.0, elastic=p), net)
    _, new = proj.project(proj.init_state(x, 0, 0), target, np.arange(len(sel)))
    rmsd = lambda a, b: np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1)))
    assert rmsd(x, target) > 6.0
    assert rmsd(new, target) < 1.5
    bonds = np.linalg.norm(np.diff(new, axis=0), axis=1)
    bonds0 = np.linalg.norm(np.diff(x, axis=0), axis=1)
    dev = np.abs(bonds - bonds0)
    # thermal fluctuations at 300 K of a soft network, no broken bonds
    assert np.median(dev) < 0.35 and np.percentile(dev, 95) < 0.8 and dev.max() < 1.2


def test_repulsion_pairs_exclude_the_network_and_pad_to_a_power_of_two(adk_calpha):
    m, sel = adk_calpha
    x = m.positions[sel]
    p = ElasticNetworkConfig(local_cutoff=6, contact_cutoff=6, repulsion_distance=4)
    net = build_elastic_network(x, m.residue_ids[sel], m.chain_ids[sel], p)
    pairs, mask, cap = repulsion_pairs(x, net)
    assert cap == len(pairs) == len(mask) and cap & (cap - 1) == 0
    real = pairs[mask > 0]
    codes = real.min(1).astype(np.int64) * len(x) + real.max(1)
    assert not np.isin(codes, net.excluded_codes()).any()


def test_rigid_carry_moves_hydrogens_with_their_residue(data_dir):
    m = read_structure(data_dir / "trialanine" / "ala_model_0.pdb")
    sel = selection_indices(m, "heavy")
    carry = RigidCarry(m.positions, m.chain_ids, m.residue_ids, sel)
    r = _rotation(40, (0.3, 0.5, 0.8) / np.linalg.norm([0.3, 0.5, 0.8]))
    moved_sel = m.positions[sel] @ r.T + np.array([1.0, -2.0, 3.0])
    new = carry(m.positions, moved_sel)
    np.testing.assert_allclose(new, m.positions @ r.T + np.array([1.0, -2.0, 3.0]), atol=1e-6)
    # the no-prior projector puts the selected atoms exactly on the target
    proj = NoProjector(carry)
    _, out = proj.project(proj.init_state(m.positions, 0, 0), moved_sel, sel)
    np.testing.assert_allclose(out[sel], moved_sel)


def test_user_energy_import_and_errors():
    fn = load_user_energy("numpy:sum")
    assert fn(np.ones(3)) == 3
    with pytest.raises(ConfigError, match="cannot import"):
        load_user_energy("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="no attribute"):
        load_user_energy("numpy:no_such_function_xyz")
