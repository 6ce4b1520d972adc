"""The likelihood matrix: entries equal the single-image likelihoods of pipeline images, batching
and padding do not matter, the sharded path equals the single-device path, saving round-trips."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.imaging import ImagingConfig, simulate_images_jit
from cryoensemble.inference import (
    LikelihoodConfig,
    likelihood_matrix_arrays,
    log_likelihood_colored,
    log_likelihood_marginal,
    stack_structures,
)
from cryoensemble.io import load_likelihood_matrix, save_likelihood_matrix
from cryoensemble.ndimage import circular_mask, radial_to_grid
from cryoensemble.noise import NoiseSpectra, WhiteGaussianNoise
from cryoensemble.optics import CTFParams
from cryoensemble.pose import random_rotations
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure

N, PX, B = 32, 3.0, 11


def _setup(data_dir, n=B):
    ms = [read_structure(data_dir / f"adk_{k}.pdb") for k in ("open", "closed")]
    atoms = [gaussian_atoms(m, selection="calpha", center=m.center_of_mass()) for m in ms]
    config = ImagingConfig.for_atoms(atoms[0], N, PX, chunk_size=4)
    rot = random_rotations(jax.random.key(0), n)
    shifts = jax.random.normal(jax.random.key(1), (n, 2)) * 2.0
    ctf = CTFParams(
        defocus_u=jnp.linspace(8000.0, 20000.0, n), defocus_v=jnp.linspace(9000.0, 19000.0, n)
    )
    clean = simulate_images_jit(atoms[0], rot, shifts, ctf, config)
    sigma = float(jnp.std(clean)) * 2
    images = clean + sigma * jax.random.normal(jax.random.key(2), clean.shape)
    return atoms, config, images, rot, shifts, ctf, sigma


def _psd():
    ky = np.fft.fftfreq(N)[:, None]
    kx = np.fft.rfftfreq(N)[None, :]
    return jnp.asarray(1.0 + 5 * np.exp(-(kx**2 + ky**2) / 0.02), jnp.float32)


@pytest.mark.parametrize(
    "kind,masked",
    [
        ("white", False),
        ("marginal", False),
        ("marginal", True),
        ("colored", True),
        ("colored_white", False),
    ],
)
def test_entries_equal_single_image_likelihoods(data_dir, kind, masked):
    atoms, config, images, rot, shifts, ctf, sigma = _setup(data_dir)
    mask = circular_mask(N, 10.0).astype(jnp.float32) if masked else None
    psd = _psd()
    opts = LikelihoodConfig(kind=kind, sigma=sigma, psd=psd, mask=mask)
    L = likelihood_matrix_arrays(images, rot, shifts, ctf, atoms, config, opts, batch_size=4)
    assert L.shape == (B, 2) and L.dtype == np.float32
    if kind == "white":
        one = lambda x, y: WhiteGaussianNoise(sigma).log_likelihood(y, x, mask)
    elif kind == "marginal":
        one = lambda x, y: log_likelihood_marginal(x, y, mask)
    else:
        one = lambda x, y: log_likelihood_colored(x, y, psd, mask, marginal=kind == "colored")
    for m, a in enumerate(atoms):
        x = simulate_images_jit(a, rot, shifts, ctf, config)
        want = np.asarray(jax.jit(jax.vmap(one))(x, images))
        np.testing.assert_allclose(L[:, m], want, rtol=2e-5, atol=1e-2)


def test_batch_size_and_padding_do_not_matter(data_dir):
    atoms, config, images, rot, shifts, ctf, _ = _setup(data_dir)
    opts = LikelihoodConfig(kind="marginal", exact=False)
    a = likelihood_matrix_arrays(images, rot, shifts, ctf, atoms, config, opts, batch_size=3)
    b = likelihood_matrix_arrays(images, rot, shifts, ctf, atoms, config, opts, batch_size=64)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_structures_with_different_atom_counts_are_padded_exactly(data_dir):
    atoms, config, images, rot, shifts, ctf, _ = _setup(data_dir, n=4)
    small = atoms[1].__class__(
        atoms[1].positions[:100], atoms[1].amplitudes[:100], atoms[1].variances[:100]
    )
    stacked = stack_structures([atoms[0], small])
    assert stacked.positions.shape == (2, atoms[0].n_atoms, 3)
    opts = LikelihoodConfig(kind="marginal")
    both = likelihood_matrix_arrays(images, rot, shifts, ctf, [atoms[0], small], config, opts)
    alone = likelihood_matrix_arrays(images, rot, shifts, ctf, [small], config, opts)
    np.testing.assert_allclose(both[:, 1], alone[:, 0], rtol=1e-6)


def test_option_errors():
    with pytest.raises(InputError, match="noise sigma"):
        LikelihoodConfig(kind="white")
    with pytest.raises(InputError, match="power spectrum"):
        LikelihoodConfig(kind="colored")
    with pytest.raises(InputError, match="kind"):
        LikelihoodConfig(kind="poisson")


def test_save_and_load(tmp_path):
    L = np.arange(12, dtype=np.float32).reshape(6, 2)
    save_likelihood_matrix(tmp_path, L, np.arange(6) + 10, {"kind": "marginal"})
    L2, idx = load_likelihood_matrix(tmp_path)
    np.testing.assert_array_equal(L, L2)
    np.testing.assert_array_equal(idx, np.arange(6) + 10)
    with pytest.raises(InputError, match="not found"):
        load_likelihood_matrix(tmp_path / "nothing.npy")


_SHARDED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import jax, jax.numpy as jnp, numpy as np
    assert len(jax.devices()) == 2, jax.devices()
    sys.path.insert(0, sys.argv[1])
    import test_likelihood_matrix as t
    from cryoensemble.inference import LikelihoodConfig, likelihood_matrix_arrays
    from cryoensemble.parallel import particle_mesh
    atoms, config, images, rot, shifts, ctf, sigma = t._setup(Path(sys.argv[2]), n=13)
    out = {}
    for kind in ["colored"]:
        opts = LikelihoodConfig(kind=kind, sigma=sigma, psd=t._psd(), mask=None)
        one = likelihood_matrix_arrays(images, rot, shifts, ctf, atoms, config, opts,
                                       batch_size=6, mesh=particle_mesh(jax.devices()[:1]))
        two = likelihood_matrix_arrays(images, rot, shifts, ctf, atoms, config, opts,
                                       batch_size=6, mesh=particle_mesh(jax.devices()))
        out[kind] = (one, two, two)
    # the default mesh (no argument) uses both devices
    out["colored"] = out["colored"][:2] + (likelihood_matrix_arrays(
        images, rot, shifts, ctf, atoms, config, opts, batch_size=6),)
    np.savez(sys.argv[3], **{f"{k}_{i}": v[i] for k, v in out.items() for i in range(3)})
    """
)


def test_sharded_equals_single_device(tmp_path, data_dir):
    script = tmp_path / "sharded.py"
    script.write_text(_SHARDED)
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    env["JAX_PLATFORMS"] = "cpu"
    res = subprocess.run(
        [
            sys.executable,
            str(script),
            os.path.dirname(__file__),
            str(data_dir),
            str(tmp_path / "o.npz"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = np.load(tmp_path / "o.npz")
    for kind in ["colored"]:
        one, two, dflt = (out[f"{kind}_{i}"] for i in range(3))
        assert one.shape == (13, 2)
        np.testing.assert_allclose(two, one, rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(dflt, one, rtol=1e-6, atol=1e-3)


def _spectra(profile_values, scales):
    """NoiseSpectra with one radial profile per particle (the given flat values) and scales."""
    r = int(np.rint(np.hypot(N // 2, N // 2))) + 1
    profiles = jnp.asarray(np.repeat(np.asarray(profile_values, np.float32)[:, None], r, 1))
    n = len(scales)
    return NoiseSpectra(
        profiles=profiles,
        group_profiles=profiles[:1],
        spectrum_group=jnp.zeros(len(profile_values), jnp.int32),
        index=jnp.asarray(np.arange(n) % len(profile_values), jnp.int32),
        scale=jnp.asarray(scales, jnp.float32),
        weights=jnp.ones(len(profile_values), jnp.float32),
        box_size=N,
        shrinkage=0.0,
    )


def test_flat_spectra_equal_the_white_path(data_dir):
    atoms, config, images, rot, shifts, ctf, sigma = _setup(data_dir)
    run = lambda opts: likelihood_matrix_arrays(
        images, rot, shifts, ctf, atoms, config, opts, batch_size=4
    )
    marginal = run(LikelihoodConfig(kind="marginal"))
    unit = run(LikelihoodConfig(kind="colored", spectra=_spectra([1.0], np.ones(B))))
    np.testing.assert_allclose(unit, marginal, rtol=1e-5, atol=1e-2)
    # per-particle flat levels s_i: whitening scales y and x by 1 / sqrt(s_i), which adds the
    # same (N - 2) / 2 log s_i (residual) + 1 / 2 log s_i (det C^T C) to every structure of
    # particle i (marginal), or N log sigma_i (white)
    levels = np.exp(np.random.default_rng(0).normal(0.0, 0.5, B))
    spectra = _spectra([1.0, 2.0], levels)
    var = np.where(np.arange(B) % 2 == 0, 1.0, 2.0) * levels
    col = run(LikelihoodConfig(kind="colored", spectra=spectra))
    want = marginal + 0.5 * (N * N - 1) * np.log(var)[:, None]
    np.testing.assert_allclose(col, want, rtol=1e-5, atol=2e-2)
    sig = float(np.sqrt(var[0]))
    white = run(LikelihoodConfig(kind="white", sigma=sig))
    cw = run(LikelihoodConfig(kind="colored_white", spectra=spectra))
    np.testing.assert_allclose(cw[0] - N * N * np.log(sig), white[0], rtol=1e-5, atol=2e-2)


def test_per_particle_spectra_equal_single_image_likelihoods(data_dir):
    atoms, config, images, rot, shifts, ctf, _ = _setup(data_dir)
    r = np.arange(int(np.rint(np.hypot(N // 2, N // 2))) + 1)
    radial = 1.0 + 5 * np.exp(-((r / N) ** 2) / 0.02)
    profiles = np.stack([radial, radial**2, np.sqrt(radial)])
    scales = np.linspace(0.5, 2.0, B)
    spectra = NoiseSpectra(
        profiles=jnp.asarray(profiles, jnp.float32),
        group_profiles=jnp.asarray(profiles[:1], jnp.float32),
        spectrum_group=jnp.zeros(3, jnp.int32),
        index=jnp.asarray(np.arange(B) % 3, jnp.int32),
        scale=jnp.asarray(scales, jnp.float32),
        weights=jnp.ones(3, jnp.float32),
        box_size=N,
        shrinkage=0.0,
    )
    mask = circular_mask(N, 10.0).astype(jnp.float32)
    psds = np.asarray(spectra.psd(np.arange(B)))
    assert psds.shape == (B, N, N // 2 + 1)
    np.testing.assert_allclose(psds[4], scales[4] * radial_to_grid(profiles[1], N), rtol=1e-6)
    for kind in ("colored", "colored_white"):
        opts = LikelihoodConfig(kind=kind, spectra=spectra, mask=mask)
        L = likelihood_matrix_arrays(images, rot, shifts, ctf, atoms, config, opts, batch_size=4)
        marginal = kind == "colored"
        one = lambda x, y, p, marg=marginal: log_likelihood_colored(x, y, p, mask, marginal=marg)
        for m, a in enumerate(atoms):
            x = simulate_images_jit(a, rot, shifts, ctf, config)
            want = np.asarray(jax.jit(jax.vmap(one))(x, images, jnp.asarray(psds)))
            np.testing.assert_allclose(L[:, m], want, rtol=2e-5, atol=1e-2)
    with pytest.raises(InputError, match="cover"):
        likelihood_matrix_arrays(
            images[:5],
            rot[:5],
            shifts[:5],
            CTFParams(defocus_u=ctf.defocus_u[:5], defocus_v=ctf.defocus_v[:5]),
            atoms,
            config,
            LikelihoodConfig(kind="colored", spectra=spectra),
        )
    with pytest.raises(InputError, match="one"):
        LikelihoodConfig(kind="colored", psd=_psd(), spectra=spectra)
