import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from cryoensemble.pose import (
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_to_matrix,
    random_rotations,
)

TRIPLES = [
    (0, 0, 0),
    (10, 20, 30),
    (-150, 95, 44),
    (270, 170, -60),
    (33.3, 0.5, 12.0),
    (90, 90, 90),
]


def _relion_rows(rot, tilt, psi):
    """RELION 3.1's Euler_angles2matrix, written out from its source formula (Xmipp convention)."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array(
        [
            [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
            [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
            [sc, ss, cb],
        ]
    )


def _rz(d):
    t = np.deg2rad(d)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def _ry(d):
    t = np.deg2rad(d)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


@pytest.mark.parametrize("triple", TRIPLES)
def test_matrix_matches_relion_definition(triple, x64):
    a = np.asarray(euler_to_matrix(*[jnp.float64(t) for t in triple]))
    np.testing.assert_allclose(a, _relion_rows(*triple), atol=1e-12)
    rot, tilt, psi = triple
    np.testing.assert_allclose(a, _rz(-psi) @ _ry(-tilt) @ _rz(-rot), atol=1e-12)


def test_simple_rotations_move_points_as_relion_does():
    # rot = 90: the map's +x axis goes to the image's -y axis (A = Rz(-90)).
    a = np.asarray(euler_to_matrix(90.0, 0.0, 0.0))
    np.testing.assert_allclose(a @ [1, 0, 0], [0, -1, 0], atol=1e-6)
    # tilt = 90: the map's +z axis goes to the image's -x axis.
    a = np.asarray(euler_to_matrix(0.0, 90.0, 0.0))
    np.testing.assert_allclose(a @ [0, 0, 1], [-1, 0, 0], atol=1e-6)


def test_euler_round_trip(x64):
    r = random_rotations(jax.random.PRNGKey(1), 500, dtype=jnp.float64)
    back = euler_to_matrix(*matrix_to_euler(r))
    np.testing.assert_allclose(back, r, atol=1e-10)
    _, tilt, _ = matrix_to_euler(r)
    assert np.all((np.asarray(tilt) >= 0) & (np.asarray(tilt) <= 180))


def test_gimbal_lock_round_trip(x64):
    for triple in [(40.0, 0.0, 0.0), (40.0, 0.0, 25.0), (10.0, 180.0, 30.0)]:
        m = euler_to_matrix(*[jnp.float64(t) for t in triple])
        np.testing.assert_allclose(euler_to_matrix(*matrix_to_euler(m)), m, atol=1e-9)


def test_quaternion_round_trip(x64):
    r = random_rotations(jax.random.PRNGKey(2), 300, dtype=jnp.float64)
    q = matrix_to_quaternion(r)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(q), r, atol=1e-10)
    # A quarter turn about z, written by hand.
    qz = jnp.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(quaternion_to_matrix(qz), _rz(90), atol=1e-12)


def test_random_rotations_are_uniform():
    r = np.asarray(random_rotations(jax.random.PRNGKey(3), 20000))
    np.testing.assert_allclose(
        np.einsum("nij,nkj->nik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.det(r), 1, atol=1e-5)
    # Haar measure: the image of any fixed axis is uniform on the sphere, so its z is U(-1, 1),
    # and the rotation angle theta has density (1 - cos theta) / pi.
    z = r[:, 2, 2]
    assert stats.kstest(z, stats.uniform(loc=-1, scale=2).cdf).pvalue > 1e-3
    theta = np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))
    cdf = lambda t: (t - np.sin(t)) / np.pi
    assert stats.kstest(theta, cdf).pvalue > 1e-3
