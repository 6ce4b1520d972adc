"""The pipeline split over several (CPU host) devices equals the single-device result, forward
and gradient (run in a subprocess: the device count is fixed when JAX starts)."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    assert jax.device_count() == 2
    from cryoensemble.imaging import ImagingConfig, simulate_images
    from cryoensemble.optics import CTFParams
    from cryoensemble.parallel import particle_mesh
    from cryoensemble.pose import random_rotations
    from cryoensemble.scattering import gaussians_from_form_factors

    rng = np.random.default_rng(0)
    atoms = gaussians_from_form_factors(rng.normal(size=(40, 3)) * 5, np.ones((40, 2)),
                                        np.tile([5.0, 20.0], (40, 1)))
    b = 5  # not a multiple of the device count: exercises the padding
    rots = random_rotations(jax.random.PRNGKey(0), b)
    origins = jnp.asarray(rng.normal(size=(b, 2)), jnp.float32)
    ctf = CTFParams(defocus_u=jnp.linspace(8000.0, 15000.0, b))
    config = ImagingConfig.for_atoms(atoms, 32, 1.5)
    target = jnp.asarray(rng.normal(size=(b, 32, 32)), jnp.float32)

    def loss(pos, amp, mesh):
        a = atoms.with_positions(pos)
        a = type(a)(a.positions, amp, a.variances)
        return jnp.sum(simulate_images(a, rots, origins, ctf, config, mesh=mesh) * target)

    mesh = particle_mesh()
    one = simulate_images(atoms, rots, origins, ctf, config)
    two = jax.jit(lambda a: simulate_images(a, rots, origins, ctf, config, mesh=mesh))(atoms)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6 * float(jnp.abs(one).max()))
    g1 = jax.grad(loss, argnums=(0, 1))(atoms.positions, atoms.amplitudes, None)
    g2 = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(atoms.positions, atoms.amplitudes, mesh)
    for x, y in zip(g1, g2):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5 * float(jnp.abs(x).max()))
    print("OK")
    """
)


def test_sharded_forward_and_gradient_equal_single_device():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]
