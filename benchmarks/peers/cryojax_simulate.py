"""Peer benchmark: cryoJAX 0.6.0's own simulation loop writing the same files as
``cryoensemble simulate`` (MRC stacks with mrcfile, a RELION 3.1 STAR with starfile).

Run with the *peer* environment (cryoJAX is never a dependency of cryoensemble)::

    .venv-peers/bin/python benchmarks/peers/cryojax_simulate.py \
        --star SIM/particles.star --pdb src/cryoensemble/data/adk_open.pdb --out DIR \
        [--snr 0.1] [--batch 128] [--stack-size 10000] [--json result.json]

It simulates exactly the particles of ``--star`` (poses, origins, defocus, astigmatism; 128 x 128
at 1.2 A, 300 kV, Cs 2.7 mm, Q0 0.1: the adenylate-kinase case of ``cryojax_imaging.py``, whose
loading and RELION -> cryoJAX convention mapping it reuses) with cryoJAX's fast atom path
(``GaussianMixtureProjection(n_spread=suggest_n_spread(...))``, ``AstigmaticCTF`` in a
``ContrastTransferTheory``), batched by ``eqx.filter_jit(eqx.filter_vmap(...))`` over ``--batch``
particles, negates the images (cryoJAX's CTF has the opposite sign to RELION's), adds white
Gaussian noise at ``--snr`` (one sigma for the dataset from the first batch, signal variance
inside the disc of radius 64 px, as cryoensemble), and writes stacks of ``--stack-size`` images
with ``mrcfile`` and ``particles.star`` with ``starfile``. The time from the start of the volume
loading to the last file closed is reported as images/s (compilation included, as for
cryoensemble's end-to-end figure); peak RSS is ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cryojax_imaging as ci  # noqa: E402


def read_params(star: pathlib.Path) -> tuple[dict, object]:
    import starfile

    blocks = starfile.read(star, always_dict=True)
    p = blocks["particles"]
    relion = {
        "rot": p["rlnAngleRot"].to_numpy(),
        "tilt": p["rlnAngleTilt"].to_numpy(),
        "psi": p["rlnAnglePsi"].to_numpy(),
        "shift_x": p["rlnOriginXAngst"].to_numpy(),
        "shift_y": p["rlnOriginYAngst"].to_numpy(),
        "defocus_u": p["rlnDefocusU"].to_numpy(),
        "defocus_v": p["rlnDefocusV"].to_numpy(),
        "defocus_angle": p["rlnDefocusAngle"].to_numpy(),
    }
    return relion, blocks


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--star", required=True)
    ap.add_argument("--pdb", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--stack-size", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import cryojax
    import jax
    import jax.numpy as jnp
    import mrcfile
    import pandas as pd
    import starfile

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    relion, blocks = read_params(pathlib.Path(args.star))
    n = len(relion["rot"])

    t0 = time.perf_counter()
    volume = ci.load_volume(pathlib.Path(args.pdb))
    integrator, n_spread = ci.fast_integrator(volume)
    simulate = ci.make_simulate_batch(integrator, with_ctf=True)
    params = ci.relion_to_cryojax(**relion)
    key = jax.random.key(args.seed)
    c = np.arange(ci.N) - ci.N // 2
    mask = (c[:, None] ** 2 + c[None, :] ** 2) <= (ci.N // 2) ** 2

    @jax.jit
    def add_noise(k, clean, sigma):
        return -clean + sigma * jax.random.normal(k, clean.shape, clean.dtype)

    sigma = None
    names = []
    bs = args.batch
    writer = None
    stack_index = -1
    written_in_stack = 0
    for b, start in enumerate(range(0, n, bs)):
        stop = min(n, start + bs)
        chunk = {k: v[start:stop] for k, v in params.items()}
        if stop - start < bs:  # pad the last batch to the compiled shape
            chunk = {
                k: np.concatenate([v, np.repeat(v[-1:], bs - (stop - start))])
                for k, v in chunk.items()
            }
        clean = simulate(volume, ci.to_device(chunk))
        if sigma is None:
            img = np.asarray(-clean[: stop - start], np.float64)
            vals = img[:, mask]
            var = ((vals - vals.mean(axis=1, keepdims=True)) ** 2).mean(axis=1).mean()
            sigma = float(np.sqrt(var / args.snr))
        noisy = np.asarray(add_noise(jax.random.fold_in(key, b), clean, jnp.float32(sigma)))
        noisy = noisy[: stop - start]
        i = 0
        while i < len(noisy):
            if writer is None:
                stack_index += 1
                size = min(args.stack_size, n - stack_index * args.stack_size)
                name = f"particles_{stack_index:05d}.mrcs"
                writer = mrcfile.new_mmap(
                    out / name, shape=(size, ci.N, ci.N), mrc_mode=2, overwrite=True
                )
                writer.set_image_stack()
                writer.voxel_size = ci.PIXEL_SIZE
                names.append(name)
                written_in_stack = 0
            take = min(len(noisy) - i, writer.data.shape[0] - written_in_stack)
            writer.data[written_in_stack : written_in_stack + take] = noisy[i : i + take]
            written_in_stack += take
            i += take
            if written_in_stack == writer.data.shape[0]:
                writer.update_header_stats()
                writer.close()
                writer = None
    particles = blocks["particles"].copy()
    particles["rlnImageName"] = [
        f"{j % args.stack_size + 1:06d}@particles_{j // args.stack_size:05d}.mrcs" for j in range(n)
    ]
    starfile.write(
        {"optics": blocks["optics"], "particles": pd.DataFrame(particles)},
        out / "particles.star",
        overwrite=True,
    )
    elapsed = time.perf_counter() - t0
    result = {
        "cryojax_version": cryojax.__version__,
        "n_particles": n,
        "batch": bs,
        "n_spread": n_spread,
        "elapsed_s": elapsed,
        "images_per_s": n / elapsed,
        "noise_sigma": sigma,
        "stacks": names,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "jax_devices": [str(d) for d in jax.devices()],
    }
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
