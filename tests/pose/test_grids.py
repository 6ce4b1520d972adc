"""The Hopf-fibration SO(3) grid: HEALPix directions, counts, nesting, measured resolution."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.pose._grids import (
    cell_children,
    cell_rotations,
    grid_resolution,
    healpix_nest_angles,
    hopf_grid,
    n_rotations,
    nominal_resolution,
)


def _ring_scheme(nside):
    """HEALPix pixel centres (z, phi) from the RING-scheme formulas (Gorski et al. 2005, eq. 4-9)."""
    out = []
    for i in range(1, 4 * nside):
        if i < nside or i > 3 * nside:
            ii = i if i < nside else 4 * nside - i
            z = 1 - ii * ii / (3.0 * nside * nside)
            z = z if i < nside else -z
            out += [(z, np.pi / (2 * ii) * (j - 0.5)) for j in range(1, 4 * ii + 1)]
        else:
            z = 4.0 / 3 - 2.0 * i / (3 * nside)
            s = (i - nside + 1) % 2
            out += [(z, np.pi / (2 * nside) * (j - s / 2)) for j in range(1, 4 * nside + 1)]
    return np.array(out)


@pytest.mark.parametrize("nside", [1, 2, 4, 8])
def test_nested_centres_equal_the_ring_scheme(nside):
    theta, phi = healpix_nest_angles(nside, np.arange(12 * nside**2), np)
    ours = np.stack([np.cos(theta), np.mod(phi, 2 * np.pi)], 1)
    ring = _ring_scheme(nside)
    ring[:, 1] = np.mod(ring[:, 1], 2 * np.pi)
    key = lambda a: np.lexsort((np.round(a[:, 1], 8), np.round(a[:, 0], 8)))
    np.testing.assert_allclose(ours[key(ours)], ring[key(ring)], atol=1e-9)
    # jax and numpy agree
    tj, pj = healpix_nest_angles(nside, jnp.arange(12 * nside**2))
    np.testing.assert_allclose(np.asarray(tj), theta, atol=1e-5)
    np.testing.assert_allclose(np.asarray(pj), phi, atol=1e-5)


def test_counts_weights_and_euler_layout():
    for level in range(4):
        g = hopf_grid(level)
        assert g.size == n_rotations(level) == 72 * 8**level
        assert np.allclose(np.exp(g.log_weights).sum(), 1.0)
        assert nominal_resolution(level) == 60.0 / 2**level
    g = hopf_grid(1)
    # rotations are proper and match cell_rotations (used on the device for refinement)
    r = g.rotations
    np.testing.assert_allclose(
        np.einsum("nij,nkj->nik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(cell_rotations(1, g.pixels, g.psi_index)), r, atol=1e-6)
    # the viewing direction (third row) is the HEALPix centre, psi uniform in [0, 360)
    theta, phi = healpix_nest_angles(2, g.pixels, np)
    d = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
    np.testing.assert_allclose(r[:, 2], d, atol=1e-6)
    psis = np.unique(np.round(g.euler[:, 2], 6))
    np.testing.assert_allclose(psis, (np.arange(12) + 0.5) * 30.0, atol=1e-4)
    with pytest.raises(InputError):
        hopf_grid(-1)


def test_children_partition_their_parent():
    """The 8 children of a cell lie in it: the nearest level-l direction to every child direction
    is its parent's, and the child psi intervals halve the parent's."""
    level = 2
    coarse = hopf_grid(level)
    cp, cq = cell_children(coarse.pixels[:48], coarse.psi_index[:48], np)
    th_c, ph_c = healpix_nest_angles(2**level, np.arange(12 * 4**level), np)
    dc = np.stack([np.sin(th_c) * np.cos(ph_c), np.sin(th_c) * np.sin(ph_c), np.cos(th_c)], 1)
    th, ph = healpix_nest_angles(2 ** (level + 1), cp.reshape(-1), np)
    d = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], 1)
    nearest = np.argmax(d @ dc.T, axis=1)
    np.testing.assert_array_equal(nearest, np.repeat(coarse.pixels[:48], 8))
    psi_parent = (coarse.psi_index[:48] + 0.5) * 360 / (6 * 2**level)
    psi_child = (cq + 0.5) * 360 / (6 * 2 ** (level + 1))
    assert np.all(
        np.abs(psi_child - psi_parent[:, None]) == pytest.approx(360 / (6 * 2**level) / 4)
    )


def test_measured_resolution():
    for level in (1, 2):
        res = grid_resolution(hopf_grid(level), n_samples=3000)
        nominal = nominal_resolution(level)
        # nearest neighbours are one grid step apart; every rotation is within a step
        assert 0.9 * nominal < res["mean_nn"] <= 1.001 * nominal
        assert res["max_nn"] <= 1.001 * nominal
        assert res["covering_radius"] < nominal
        assert 0.4 * nominal < res["mean_error"] < 0.5 * nominal
