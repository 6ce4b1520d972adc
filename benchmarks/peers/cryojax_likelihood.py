"""cryoJAX 0.6.0 likelihood-matrix throughput (run with the peers' interpreter, .venv-peers).

The same computation as ``bench_likelihood.py``: adenylate kinase (heavy atoms, Peng Gaussians),
N x N images, pose + CTF per particle, GaussianWhiteNoiseModel.log_likelihood vmapped over a batch
of particles, one structure at a time. Prints one JSON line with pairs/s.

usage: python cryojax_likelihood.py PDB [PDB ...] --box 128 --pixel 1.2 --particles 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import equinox as eqx
import jax
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pdbs", nargs="+")
    ap.add_argument("--box", type=int, default=128)
    ap.add_argument("--pixel", type=float, default=1.2)
    ap.add_argument("--particles", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import cryojax
    import cryojax.simulator as cxs

    n, px, b = args.box, args.pixel, args.batch
    volumes = [
        cxs.load_tabulated_volume(
            p, output_type=cxs.GaussianMixtureVolume, selection_string="not element H"
        )
        for p in args.pdbs
    ]
    config = cxs.BasicImageConfig((n, n), px, 300.0, padded_shape=(2 * n, 2 * n))
    rng = np.random.default_rng(0)
    npart = args.particles
    ang = rng.uniform(-180, 180, (npart, 3)).astype(np.float32)
    off = rng.normal(size=(npart, 2)).astype(np.float32) * 2
    dfs = rng.uniform(8000, 20000, npart).astype(np.float32)
    images = rng.normal(size=(npart, n, n)).astype(np.float32)

    @eqx.filter_jit
    def batch_loglik(volume, ang, off, dfs, imgs):
        def one(a, o, df, img):
            pose = cxs.EulerAnglePose(o[0], o[1], a[0], a[1], a[2])
            ctf = cxs.AstigmaticCTF(defocus_in_angstroms=df, astigmatism_in_angstroms=100.0)
            tt = cxs.ContrastTransferTheory(ctf, amplitude_contrast_ratio=0.1)
            model = cxs.make_image_model(volume, config, pose, tt)
            noise = cxs.GaussianWhiteNoiseModel(model, variance=1.0)
            return noise.log_likelihood(img)

        return jax.vmap(one)(ang, off, dfs, imgs)

    def run():
        out = []
        for vol in volumes:
            for s in range(0, npart, b):
                sl = slice(s, s + b)
                out.append(batch_loglik(vol, ang[sl], off[sl], dfs[sl], images[sl]))
        jax.block_until_ready(out)
        return out

    t0 = time.perf_counter()
    run()  # compile
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    pairs = npart * len(volumes)
    med = statistics.median(times)
    print(
        json.dumps(
            {
                "code": "cryojax",
                "version": cryojax.__version__,
                "pairs_per_s": pairs / med,
                "times_s": times,
                "compile_s": compile_s,
                "pairs": pairs,
                "box": n,
                "device": str(jax.devices()[0]),
                "threads": os.environ.get("XLA_FLAGS", ""),
            }
        )
    )


if __name__ == "__main__":
    main()
