"""Ensemble optimisation: walkers' structures and weights from particle images under a prior.

The method of Silva-Sanchez, Thiede, Lederman and Cossio (2025), see ``docs/optimize.md``. M walkers
(all-atom models with the same atoms) and weights w on the simplex. Outer iteration t = 1..T:

1. **Likelihood phase**, S inner steps: draw B particles (numpy generator), compute the (B, M)
   marginal log-likelihoods L of the selected atoms of every walker (one jitted function: the
   walkers are stacked, the pipeline is vmapped over particles, the gradient comes from the
   projection's analytic adjoint via one ``jax.vjp``), solve the batch weights by EM on the simplex
   (from uniform, fixed number of iterations, inside jit), the loss
   J = -mean_n logsumexp_m(L_nm + log w_m), and dJ/dx with w held fixed; then move each selected
   atom ``step_size`` A along its own normalised descent direction (or an optax step).
2. **Prior projection**: each walker's :class:`PriorProjector` pulls a physical model towards the
   moved coordinates (:mod:`.langevin`, or the OpenMM projector).
3. **Re-alignment** of each walker (selected atoms) on the reference model with
   :func:`cryoensemble.pose.superpose`.

At the end the weights are refitted on all particles with the reweighting machinery
(:func:`cryoensemble.workflows.reweight._reweight.reweight_matrix`: EM + Gibbs posterior). With several JAX
devices (the CPU cores exposed as host devices, or GPUs) the batch is split over them with
``shard_map`` (L rows are gathered for the weights, the gradients summed).

Every outer iteration is checkpointed (:mod:`.checkpoint`); a resumed run continues bit-identically.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from cryoensemble.ensemble._projector import PriorProjector
from cryoensemble.errors import InputError
from cryoensemble.imaging._pipeline import ImagingConfig
from cryoensemble.inference._likelihood_matrix import (
    LikelihoodOptions,
    batch_log_likelihoods,
    circular_mask_px,
    likelihood_matrix,
)
from cryoensemble.pose import superposed_rmsd
from cryoensemble.projection._atoms import default_half_width
from cryoensemble.scattering._potential import GaussianAtoms
from cryoensemble.workflows.optimize._checkpoint import load_checkpoint, save_checkpoint
from cryoensemble.workflows.optimize._config import OptimizeSettings

__all__ = [
    "EnsembleOptimizer",
    "OptimizeResult",
    "em_weights",
    "make_inner_step",
    "superposed_rmsd",
]


# ------------------------------------------------------------------------------------------------
# the jitted inner step
# ------------------------------------------------------------------------------------------------
def em_weights(L, valid, n_iter: int):
    """Weights (M,) maximising sum_n valid_n log sum_m w_m exp(L_nm), by ``n_iter`` EM updates
    from uniform in log space (JAX; differentiable but used under stop_gradient)."""
    m = L.shape[1]
    n_valid = jnp.maximum(jnp.sum(valid), 1.0)

    def body(_, logw):
        a = L + logw[None, :]
        r = jnp.exp(a - jax.nn.logsumexp(a, axis=1, keepdims=True))
        w = jnp.sum(valid[:, None] * r, axis=0) / n_valid
        return jnp.log(jnp.maximum(w, 1e-30))

    logw = jax.lax.fori_loop(0, n_iter, body, jnp.full((m,), -jnp.log(m), L.dtype))
    return jnp.exp(logw)


def _loss_and_grad(
    pos, amps, variances, images, rotations, shifts, ctf, valid, opts, config, n_em, axis_name
):
    """(loss, batch weights (M,), dJ/dpos (M, n, 3)) on this device's share of the batch."""
    m = pos.shape[0]
    amps_m = jnp.broadcast_to(amps, (m,) + amps.shape)
    vars_m = jnp.broadcast_to(variances, (m,) + variances.shape)

    def L_of(p):
        return batch_log_likelihoods(
            GaussianAtoms(p, amps_m, vars_m), images, rotations, shifts, ctf, opts, config
        )

    L, vjp = jax.vjp(L_of, pos)  # (b, M)
    if axis_name is not None:
        L_all = jax.lax.all_gather(L, axis_name, tiled=True)
        valid_all = jax.lax.all_gather(valid, axis_name, tiled=True)
    else:
        L_all, valid_all = L, valid
    w = jax.lax.stop_gradient(em_weights(L_all, valid_all, n_em))
    n_valid = jnp.maximum(jnp.sum(valid_all), 1.0)
    a_all = L_all + jnp.log(w)[None, :]
    loss = -jnp.sum(valid_all * jax.nn.logsumexp(a_all, axis=1)) / n_valid
    a = L + jnp.log(w)[None, :]
    r = jnp.exp(a - jax.nn.logsumexp(a, axis=1, keepdims=True))
    (g,) = vjp(-(valid[:, None] * r) / n_valid)
    if axis_name is not None:
        g = jax.lax.psum(g, axis_name)
    return loss, w, g


def fourier_crop(images, n: int):
    """Images (b, N, N) Fourier-cropped to (b, n, n) (frequencies |k| < n / 2 of the N grid kept;
    scaled to keep pixel averages). White noise stays white, except on the small grid's Nyquist
    row and column (taking the real part keeps half of their power)."""
    big = images.shape[-1]
    if n == big:
        return images
    f = jnp.fft.fftshift(jnp.fft.fft2(images), axes=(-2, -1))
    lo = big // 2 - n // 2
    f = f[..., lo : lo + n, lo : lo + n]
    out = jnp.fft.ifft2(jnp.fft.ifftshift(f, axes=(-2, -1))).real
    return (out * (n * n) / (big * big)).astype(images.dtype)


def _make_tx(kind: str, learning_rate: float):
    import optax

    if kind == "adam":
        return optax.adam(learning_rate)
    if kind == "sgd":
        return optax.sgd(learning_rate)
    return None


@eqx.filter_jit
def _inner_step(
    pos,
    opt_state,
    amps,
    variances,
    images,
    rotations,
    shifts,
    ctf,
    valid,
    step_size,
    config,
    opts,
    n_em,
    kind,
    learning_rate,
    mesh,
):
    """The jitted inner step (module level, so that optimizers with equal static settings share
    the compiled code); see :func:`make_inner_step`."""
    images = fourier_crop(images, config.box_size)
    if mesh is not None and mesh.size > 1:
        from jax.sharding import PartitionSpec as P

        part = P("particles")

        def shard_fn(pos, amps, variances, images, rotations, shifts, ctf, valid):
            return _loss_and_grad(
                pos,
                amps,
                variances,
                images,
                rotations,
                shifts,
                ctf,
                valid,
                opts,
                config,
                n_em,
                "particles",
            )

        loss, w, g = jax.shard_map(
            shard_fn,
            mesh=mesh,
            in_specs=(P(), P(), P(), part, part, part, part, part),
            out_specs=(P(), P(), P()),
            check_vma=False,
        )(pos, amps, variances, images, rotations, shifts, ctf, valid)
    else:
        loss, w, g = _loss_and_grad(
            pos, amps, variances, images, rotations, shifts, ctf, valid, opts, config, n_em, None
        )
    norms = jnp.sqrt(jnp.sum(g * g, axis=-1, keepdims=True))  # (M, n, 1)
    tx = _make_tx(kind, learning_rate)
    if tx is None:
        safe = jnp.where(norms > 0, norms, 1.0)
        delta = jnp.where(norms > 0, -step_size * g / safe, 0.0)
    else:
        delta, opt_state = tx.update(g, opt_state, pos)
    stats = {
        "grad_rms": jnp.sqrt(jnp.mean(norms[..., 0] ** 2, axis=1)),
        "step_rms": jnp.sqrt(jnp.mean(jnp.sum(delta * delta, axis=-1), axis=1)),
    }
    return pos + delta, opt_state, loss, w, stats


def make_inner_step(
    config: ImagingConfig,
    opts: LikelihoodOptions,
    settings: OptimizeSettings,
    mesh=None,
):
    """One jitted inner step ``step(pos (M, n, 3), opt_state, amps, variances, images,
    rotations, shifts, ctf, valid) -> (new_pos, opt_state, loss, w (M,), stats)`` and the
    optimizer's ``init(pos)``.

    ``config`` is the imaging of the likelihood phase: when its box is smaller than the
    particles', the images are Fourier-cropped to it inside the step (see ``downsample``).
    ``stats``: rms gradient norm per walker and the rms displacement per walker (A).
    """
    n_em = int(settings.em_iterations)
    kind = str(settings.optimizer)
    lr = float(settings.learning_rate)
    step_size = jnp.float32(settings.step_size)
    mesh = mesh if (mesh is not None and mesh.size > 1) else None
    tx = _make_tx(kind, lr)

    step = functools.partial(
        _inner_step,
        step_size=step_size,
        config=config,
        opts=opts,
        n_em=n_em,
        kind=kind,
        learning_rate=lr,
        mesh=mesh,
    )

    def init(pos):
        return None if tx is None else tx.init(jnp.asarray(pos))

    return step, init


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _rotate_state(arrays: dict[str, np.ndarray], r: np.ndarray, t: np.ndarray) -> dict:
    out = dict(arrays)
    out["positions"] = np.asarray(arrays["positions"], np.float64) @ r.T + t
    for name in ("velocities", "velocity"):
        if name in out and np.ndim(out[name]) == 2 and np.shape(out[name])[1] == 3:
            out[name] = np.asarray(out[name]) @ r.T
    return out


def _fingerprint(settings: OptimizeSettings, start: np.ndarray, n_particles: int) -> str:
    keep = {
        k: v
        for k, v in settings.model_dump(mode="json").items()
        if k
        not in (
            "iterations",
            "progress",
            "final_batch_size",
            "n_samples",
            "burn_in",
            "credible_level",
        )
    }
    h = hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(np.asarray(start, np.float32)).tobytes())
    h.update(str(int(n_particles)).encode())
    return h.hexdigest()[:16]


@dataclasses.dataclass
class OptimizeResult:
    """The outcome of :meth:`EnsembleOptimizer.run`."""

    positions: np.ndarray  # (M, n_atoms, 3) final walkers, all atoms, A
    history: list[dict]
    trajectory: np.ndarray  # (F, M, n_atoms, 3)
    trajectory_iterations: list[int]
    reweight: Any | None  # ReweightResult (final weights on all particles) or None
    names: list[str]

    @property
    def weights(self) -> np.ndarray:
        """Final weights: posterior means on all particles (batch weights if not refitted)."""
        if self.reweight is not None:
            return np.asarray(self.reweight.summary["mean"])
        return np.asarray(self.history[-1]["batch_weights"])


# ------------------------------------------------------------------------------------------------
# the optimizer
# ------------------------------------------------------------------------------------------------
class EnsembleOptimizer:
    """Ensemble optimisation of M walkers against ``dataset`` (see the module docstring).

    Args:
        settings: the algorithm (:class:`OptimizeSettings`).
        dataset: a :class:`~cryoensemble.io.ParticleDataset` or :class:`ArrayParticles`.
        atoms: Gaussian atoms of the selected atoms (amplitudes, variances; positions unused).
        start: (M, n_atoms, 3) starting positions of all atoms of every walker, in the particles'
            frame (A).
        selection: (n_sel,) indices of the atoms in the likelihood (into n_atoms).
        projector: the prior projector (:class:`~.langevin.LangevinProjector`, ...).
        reference: (n_sel, 3) positions of the reference model's selected atoms (alignment).
        ground_truth: true states' positions (n_rmsd, 3) each, compared with the walkers' atoms
            ``rmsd_index`` after superposition, every iteration.
        imaging: the imaging settings (default from the dataset: CTF, pad factor 2).
        mask_radius: circular mask (A) of the likelihood (default: the settings').
        mesh: a 1-D "particles" mesh (default: all local devices if there are several).
        log: called with one line of text per iteration (e.g. a logger).
    """

    def __init__(
        self,
        settings: OptimizeSettings,
        dataset,
        atoms: GaussianAtoms,
        start: np.ndarray,
        selection: np.ndarray,
        projector: PriorProjector,
        *,
        reference: np.ndarray | None = None,
        ground_truth: Sequence[np.ndarray] | None = None,
        ground_truth_names: Sequence[str] | None = None,
        rmsd_index: np.ndarray | None = None,
        imaging: ImagingConfig | None = None,
        apply_ctf: bool = True,
        pad_factor: float = 2.0,
        chunk_size: int | None = None,
        names: Sequence[str] | None = None,
        mesh=None,
        log: Callable[[str], None] | None = None,
    ):
        self.settings = settings
        self.dataset = dataset
        start = np.asarray(start, np.float64)
        if start.ndim != 3 or start.shape[2] != 3:
            raise InputError(f"walker positions must be (M, n_atoms, 3), got {start.shape}")
        self.start = start
        self.n_walkers = start.shape[0]
        self.selection = np.asarray(selection, np.int64)
        if atoms.n_atoms != len(self.selection):
            raise InputError(
                f"{atoms.n_atoms} Gaussian atoms for a selection of {len(self.selection)} atoms"
            )
        self.amps = jnp.asarray(atoms.amplitudes, jnp.float32)
        self.variances = jnp.asarray(atoms.variances, jnp.float32)
        self.projector = projector
        self.reference = None if reference is None else np.asarray(reference, np.float64)
        if self.reference is not None and self.reference.shape != (len(self.selection), 3):
            raise InputError(
                f"the reference has {self.reference.shape[0]} selected atoms, the walkers "
                f"{len(self.selection)}"
            )
        self.ground_truth = [np.asarray(g, np.float64) for g in (ground_truth or [])]
        self.ground_truth_names = list(
            ground_truth_names or [f"state_{i}" for i in range(len(self.ground_truth))]
        )
        self.rmsd_index = (
            np.arange(start.shape[1]) if rmsd_index is None else np.asarray(rmsd_index, np.int64)
        )
        for g, name in zip(self.ground_truth, self.ground_truth_names, strict=True):
            if g.shape != (len(self.rmsd_index), 3):
                raise InputError(
                    f"ground truth {name}: {g.shape[0]} atoms for the RMSD but the walkers have "
                    f"{len(self.rmsd_index)}"
                )
        self.names = list(names or [f"walker_{m}" for m in range(self.n_walkers)])
        self.log = log or (lambda line: None)
        n_part = len(dataset)
        if n_part == 0:
            raise InputError(f"{getattr(dataset, 'star_path', 'dataset')}: no particles")
        self.batch_size = min(int(settings.batch_size), n_part)
        blurred = GaussianAtoms(
            jnp.zeros((atoms.n_atoms, 3)),
            self.amps,
            self.variances + settings.blur_b_factor / (8 * np.pi**2),
        )
        kw = {} if chunk_size is None else {"chunk_size": int(chunk_size)}

        def imaging_at(f: int) -> ImagingConfig:
            n = dataset.box_size // f
            if f > 1 and (dataset.box_size % f or n < 16):
                raise InputError(
                    f"downsample {f}: the box of {dataset.box_size} pixels must be a multiple of "
                    f"it and leave at least 16 pixels"
                )
            return ImagingConfig(
                box_size=n,
                pixel_size=dataset.pixel_size * f,
                pad_factor=pad_factor,
                apply_ctf=apply_ctf,
                half_width=default_half_width(blurred, dataset.pixel_size * f),
                **kw,
            )

        def options_at(f: int) -> LikelihoodOptions:
            mask = None
            if settings.mask_radius is not None:
                radius_px = settings.mask_radius / (dataset.pixel_size * f)
                if radius_px < 2:
                    raise InputError(f"mask_radius {settings.mask_radius} A is under 2 pixels")
                mask = circular_mask_px(dataset.box_size // f, radius_px)
            return LikelihoodOptions(kind="marginal", mask=mask, exact=settings.likelihood_exact)

        self.imaging = imaging_at(1) if imaging is None else imaging
        self.options = options_at(1)
        if mesh is None and len(jax.local_devices()) > 1:
            from cryoensemble.parallel import particle_mesh

            mesh = particle_mesh()
        self.mesh = mesh
        n_dev = 1 if mesh is None else mesh.size
        self.pad_to = -(-self.batch_size // n_dev) * n_dev
        self._steps = {1: make_inner_step(self.imaging, self.options, settings, mesh)}
        f = int(settings.downsample)
        if f > 1 and settings.downsample_iterations != 0:
            self._steps[f] = make_inner_step(imaging_at(f), options_at(f), settings, mesh)
        self.fingerprint = _fingerprint(settings, start, n_part)

    def downsample_at(self, iteration: int) -> int:
        """The downsampling factor of outer iteration ``iteration`` (0-based)."""
        s = self.settings
        if s.downsample > 1 and (
            s.downsample_iterations is None or iteration < s.downsample_iterations
        ):
            return int(s.downsample)
        return 1

    # -- pieces ---------------------------------------------------------------------------------
    def _rmsd_table(self, positions: np.ndarray) -> list[list[float]]:
        return [
            [superposed_rmsd(p[self.rmsd_index], g) for g in self.ground_truth] for p in positions
        ]

    def _align(self, states):
        rmsds = []
        if self.settings.align == "none" or self.reference is None:
            return states, [0.0] * len(states)
        from cryoensemble.pose import superpose

        out = []
        for st in states:
            arrays = self.projector.state_dict(st)
            pos = np.asarray(arrays["positions"], np.float64)
            _, r, t, rms = superpose(
                pos[self.selection], self.reference, method=self.settings.align
            )
            r = np.asarray(r, np.float64)
            t = np.asarray(t, np.float64)
            out.append(self.projector.load_state(_rotate_state(arrays, r, t)))
            rmsds.append(float(rms))
        return out, rmsds

    def _positions(self, states) -> np.ndarray:
        return np.stack([np.asarray(self.projector.positions(s), np.float64) for s in states])

    def initial_states(self):
        states = [
            self.projector.init_state(self.start[m], m, self.settings.seed)
            for m in range(self.n_walkers)
        ]
        return states

    # -- the loop -------------------------------------------------------------------------------
    def run(
        self,
        folder: str | Path | None = None,
        resume: bool = False,
        refit: bool = True,
        progress: bool = False,
        stop_after: int | None = None,
    ) -> OptimizeResult:
        """Run (or continue, with ``resume``) the optimisation, checkpointing into ``folder``
        after every outer iteration when ``folder`` is given. ``stop_after``: return after that
        many outer iterations in total (for tests of resuming). ``refit``: final weights on all
        particles (posterior) after the last iteration."""
        s = self.settings
        folder = None if folder is None else Path(folder)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(s.seed)
        if resume:
            if folder is None:
                raise InputError("resume needs the run's folder")
            ck = load_checkpoint(folder)
            if ck["fingerprint"] != self.fingerprint:
                raise InputError(
                    f"{folder}: the checkpoint belongs to a run with other settings or inputs "
                    "(only 'iterations' may change when resuming); use --overwrite to start again"
                )
            states = [self.projector.load_state(d) for d in ck["walker_states"]]
            rng.bit_generator.state = ck["rng_state"]
            history = ck["history"]
            start_it = int(ck["iteration"])
            traj = list(np.asarray(ck["trajectory"], np.float32))
            traj_its = list(ck["trajectory_iterations"])
            self.log(f"resumed from {folder} at iteration {start_it}")
        else:
            states = self.initial_states()
            history = []
            start_it = 0
            traj = [self._positions(states).astype(np.float32)]
            traj_its = [0]
        end_it = s.iterations if stop_after is None else min(s.iterations, int(stop_after))
        bar = _ProgressBar(s.iterations, start_it, self.names, enabled=progress)
        n_part = len(self.dataset)
        with bar:
            for it in range(start_it, end_it):
                rec = self._iteration(it, states, rng, n_part)
                states = rec.pop("_states")
                pos = self._positions(states)
                if self.ground_truth:
                    rec["rmsd"] = self._rmsd_table(pos)
                history.append(rec)
                if (it + 1) % s.trajectory_every == 0 or it + 1 == s.iterations:
                    traj.append(pos.astype(np.float32))
                    traj_its.append(it + 1)
                if folder is not None:
                    save_checkpoint(
                        folder,
                        iteration=it + 1,
                        walker_states=[self.projector.state_dict(x) for x in states],
                        rng_state=rng.bit_generator.state,
                        history=history,
                        trajectory=np.stack(traj),
                        trajectory_iterations=traj_its,
                        fingerprint=self.fingerprint,
                    )
                self.log(_history_line(rec, self.ground_truth_names))
                bar.update(rec)
        positions = self._positions(states)
        result = OptimizeResult(
            positions=positions,
            history=history,
            trajectory=np.stack(traj),
            trajectory_iterations=traj_its,
            reweight=None,
            names=self.names,
        )
        if refit and end_it == s.iterations:
            result.reweight = self.final_weights(positions, progress=progress)
        return result

    def _iteration(self, it: int, states, rng, n_part: int) -> dict:
        s = self.settings
        t0 = time.perf_counter()
        pos = jnp.asarray(self._positions(states)[:, self.selection], jnp.float32)
        start_sel = np.asarray(pos)
        factor = self.downsample_at(it)
        step_fn, init_opt = self._steps[factor]
        opt_state = init_opt(pos)
        variances = self.variances + jnp.float32(s.blur_at(it) / (8 * np.pi**2))
        losses, weights, grad_rms, step_rms = [], [], [], []
        for _ in range(s.inner_steps):
            idx = rng.choice(n_part, size=self.batch_size, replace=False)
            b = self.dataset.batch(np.sort(idx), pad_to=self.pad_to)
            pos, opt_state, loss, w, stats = step_fn(
                pos,
                opt_state,
                self.amps,
                variances,
                b.images,
                b.rotations,
                b.shifts,
                b.ctf,
                b.valid,
            )
            losses.append(loss)
            weights.append(w)
            grad_rms.append(stats["grad_rms"])
            step_rms.append(stats["step_rms"])
        target = np.asarray(pos, np.float64)  # blocks until the last step is done
        losses = [float(x) for x in losses]
        if not np.all(np.isfinite(target)) or not np.all(np.isfinite(losses)):
            raise InputError(
                f"iteration {it + 1}: non-finite loss or positions; check the particles and "
                "reduce step_size / learning_rate"
            )
        t1 = time.perf_counter()
        new_states = []
        proj_rms = []
        for m, st in enumerate(states):
            st2, full = self.projector.project(st, target[m], self.selection)
            new_states.append(st2)
            d = np.asarray(full)[self.selection] - target[m]
            proj_rms.append(float(np.sqrt(np.mean(np.sum(d * d, axis=1)))))
        t2 = time.perf_counter()
        new_states, align_rms = self._align(new_states)
        t3 = time.perf_counter()
        moved = self._positions(new_states)[:, self.selection] - start_sel
        return {
            "iteration": it + 1,
            "loss": float(np.mean(losses)),
            "loss_last": losses[-1],
            "batch_weights": np.asarray(weights[-1], np.float64).tolist(),
            "batch_weights_mean": np.mean(np.asarray(weights, np.float64), axis=0).tolist(),
            "grad_rms": np.mean(np.asarray(grad_rms, np.float64), axis=0).tolist(),
            "step_rms": np.mean(np.asarray(step_rms, np.float64), axis=0).tolist(),
            "projection_rms": proj_rms,
            "alignment_rmsd": align_rms,
            "moved_rms": np.sqrt(np.mean(np.sum(moved**2, axis=-1), axis=1)).tolist(),
            "blur_b_factor": s.blur_at(it),
            "downsample": factor,
            "seconds_likelihood": t1 - t0,
            "seconds_projection": t2 - t1,
            "seconds_alignment": t3 - t2,
            "seconds": t3 - t0,
            "_states": new_states,
        }

    def final_weights(self, positions: np.ndarray, progress: bool = False):
        """Weights of the final walkers on ALL particles: the likelihood matrix, EM and the Gibbs
        posterior (:func:`~cryoensemble.workflows.reweight._reweight.reweight_matrix`)."""
        from cryoensemble.workflows.reweight._reweight import reweight_matrix

        s = self.settings
        structs = [
            GaussianAtoms(jnp.asarray(p[self.selection], jnp.float32), self.amps, self.variances)
            for p in positions
        ]
        L = likelihood_matrix(
            self.dataset,
            structs,
            self.imaging,
            options=self.options,
            batch_size=s.final_batch_size,
            mesh=self.mesh,
            progress=progress,
        )
        return reweight_matrix(
            L,
            names=self.names,
            credible_level=s.credible_level,
            n_samples=s.n_samples,
            burn_in=s.burn_in,
            seed=s.seed,
            meta={"likelihood": "marginal", "exact_marginal": s.likelihood_exact},
        )


def _history_line(rec: dict, gt_names: list[str]) -> str:
    w = ", ".join(f"{x:.3f}" for x in rec["batch_weights"])
    line = (
        f"iteration {rec['iteration']}: loss {rec['loss']:.6g}, batch weights [{w}], "
        f"{rec['seconds']:.2f} s (likelihood+gradient {rec['seconds_likelihood']:.2f}, "
        f"projection {rec['seconds_projection']:.2f}, alignment {rec['seconds_alignment']:.2f})"
    )
    if "rmsd" in rec:
        parts = []
        for m, row in enumerate(rec["rmsd"]):
            parts.append(
                f"w{m}: " + " ".join(f"{n}={v:.2f}" for n, v in zip(gt_names, row, strict=True))
            )
        line += "; RMSD (A) " + "; ".join(parts)
    return line


class _ProgressBar:
    """rich progress: iteration, loss, weights and seconds per iteration."""

    def __init__(self, total: int, done: int, names: list[str], enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]optimize"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("w {task.fields[weights]}"),
            TextColumn("{task.fields[rate]}"),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.task = self.progress.add_task(
            "optimize", total=total, completed=done, loss="--", weights="--", rate="-- s/it"
        )

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, rec: dict) -> None:
        self.progress.update(
            self.task,
            completed=rec["iteration"],
            loss=f"{rec['loss']:.5g}",
            weights="[" + " ".join(f"{x:.2f}" for x in rec["batch_weights"]) + "]",
            rate=f"{rec['seconds']:.2f} s/it",
        )


# ------------------------------------------------------------------------------------------------
# from a configuration file: inputs, outputs
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PreparedRun:
    """An :class:`EnsembleOptimizer` built from an :class:`OptimizeConfig`, with its models."""

    optimizer: EnsembleOptimizer
    template: Any  # AtomicModel of the first walker (atom order of the outputs)
    offset: np.ndarray  # (3,) added back to positions when writing PDBs (the centre removed)
    dataset: Any
    info: dict


def _same_topology(models: Sequence, paths: Sequence, what: str) -> None:
    first, p0 = models[0], paths[0]
    for mdl, p in zip(models[1:], paths[1:], strict=True):
        if mdl.n_atoms != first.n_atoms:
            raise InputError(
                f"{p}: {mdl.n_atoms} atoms but {p0} has {first.n_atoms}; all {what} must have the "
                "same atoms in the same order (same topology)"
            )
        for field in ("atom_names", "residue_names", "residue_ids", "chain_ids"):
            a, b = getattr(first, field), getattr(mdl, field)
            bad = np.flatnonzero(a != b)
            if len(bad):
                i = int(bad[0])
                raise InputError(
                    f"{p}: atom {i + 1} is {mdl.atom_names[i]} {mdl.residue_names[i]} "
                    f"{mdl.chain_ids[i]}{mdl.residue_ids[i]} but in {p0} it is "
                    f"{first.atom_names[i]} {first.residue_names[i]} {first.chain_ids[i]}"
                    f"{first.residue_ids[i]}; all {what} must have the same topology"
                )


def prepare_run(cfg, mesh=None, log: Callable[[str], None] | None = None) -> PreparedRun:
    """Read and validate every input of ``cfg`` (an :class:`OptimizeConfig`) and build the
    optimizer. Raises :class:`InputError` before any output is written."""
    from cryoensemble.ensemble._langevin import (
        LangevinProjector,
        NoProjector,
        RigidCarry,
        build_elastic_network,
        load_user_energy,
    )
    from cryoensemble.io import ParticleDataset
    from cryoensemble.pose import superpose
    from cryoensemble.scattering._potential import gaussian_atoms
    from cryoensemble.structure import read_structure
    from cryoensemble.structure._model import selection_indices

    if not Path(cfg.particles).exists():
        raise InputError(f"{cfg.particles}: particle STAR file not found")
    for p in [*cfg.walkers, *(cfg.ground_truth or []), *([cfg.reference] if cfg.reference else [])]:
        if not Path(p).exists():
            raise InputError(f"{p}: structure file not found")
    models = [read_structure(p) for p in cfg.walkers]
    _same_topology(models, cfg.walkers, "walkers")
    template = models[0]
    ref_path = cfg.reference or cfg.walkers[0]
    reference = read_structure(ref_path)
    _same_topology([template, reference], [cfg.walkers[0], ref_path], "walkers and the reference")
    sel = selection_indices(template, cfg.selection)
    if len(sel) == 0:
        raise InputError(f"selection {cfg.selection!r} picks no atoms of {cfg.walkers[0]}")
    offset = reference.center_of_mass() if cfg.center else np.zeros(3)
    ref_pos = reference.positions - offset
    start = np.stack([m.positions - offset for m in models])
    info: dict[str, Any] = {"n_selected": int(len(sel)), "n_atoms": int(template.n_atoms)}
    if cfg.align_start:
        rms = []
        for m in range(len(start)):
            _, r, t, rr = superpose(start[m][sel], ref_pos[sel], method="kabsch")
            start[m] = start[m] @ np.asarray(r, np.float64).T + np.asarray(t, np.float64)
            rms.append(float(rr))
        info["start_alignment_rmsd"] = rms
    gt, gt_names = [], []
    rmsd_index = selection_indices(template, cfg.rmsd_selection)
    for p in cfg.ground_truth or []:
        g = read_structure(p)
        gi = selection_indices(g, cfg.rmsd_selection)
        if len(gi) != len(rmsd_index) or np.any(
            g.atom_names[gi] != template.atom_names[rmsd_index]
        ):
            raise InputError(
                f"{p}: its {cfg.rmsd_selection!r} atoms ({len(gi)}) do not match the walkers' "
                f"({len(rmsd_index)}); the ground truth needs the same atoms"
            )
        gt.append(g.positions[gi])
        gt_names.append(Path(p).stem)
    dataset = ParticleDataset(
        cfg.particles, invert_contrast=cfg.invert_contrast, require_poses=True
    )
    if len(dataset) == 0:
        raise InputError(f"{cfg.particles}: the STAR file holds no particles")
    atoms = gaussian_atoms(template, selection=cfg.selection)
    pc = cfg.projector
    carry = None
    if len(sel) < template.n_atoms and pc.kind != "openmm":
        carry = RigidCarry(start[0], template.chain_ids, template.residue_ids, sel)
    if pc.kind == "langevin":
        lc = pc.langevin
        networks = None
        if lc.energy == "elastic":
            src = [ref_pos] if lc.elastic.reference == "reference" else list(start)
            networks = [
                build_elastic_network(
                    x[sel], template.residue_ids[sel], template.chain_ids[sel], lc.elastic
                )
                for x in src
            ]
            info["elastic_network"] = [
                {"local_springs": len(n.local_pairs), "contacts": len(n.contact_pairs)}
                for n in networks
            ]
        user = load_user_energy(lc.user_energy) if lc.user_energy else None
        projector = LangevinProjector(lc, networks, user, carry)
    elif pc.kind == "openmm":
        try:
            from cryoensemble.ensemble._openmm import OpenMMProjector
        except ImportError as err:
            raise InputError(
                f"projector kind 'openmm' needs OpenMM (pip install 'cryoensemble[md]'): {err}"
            ) from None
        projector = OpenMMProjector(template, **{"selection": sel, **pc.openmm.options})
    else:
        projector = NoProjector(carry)
    opt = EnsembleOptimizer(
        cfg,
        dataset,
        atoms,
        start,
        sel,
        projector,
        reference=ref_pos[sel],
        ground_truth=gt or None,
        ground_truth_names=gt_names or None,
        rmsd_index=rmsd_index,
        apply_ctf=cfg.apply_ctf,
        pad_factor=cfg.pad_factor,
        chunk_size=cfg.chunk_size,
        names=[f"walker_{m}" for m in range(len(start))],
        mesh=mesh,
        log=log,
    )
    return PreparedRun(opt, template, offset, dataset, info)


def write_history(history: Sequence[dict], folder, gt_names: Sequence[str] = ()) -> None:
    """history.json (every record) and history.csv (one row per iteration and walker)."""
    import csv

    folder = Path(folder)
    (folder / "history.json").write_text(json.dumps(list(history), indent=1) + "\n")
    with open(folder / "history.csv", "w", newline="") as f:
        wr = csv.writer(f)
        head = [
            "iteration",
            "walker",
            "loss",
            "batch_weight",
            "batch_weight_mean",
            "grad_rms",
            "step_rms",
            "projection_rms",
            "alignment_rmsd",
            "moved_rms",
            "blur_b_factor",
            "seconds",
            "seconds_likelihood",
            "seconds_projection",
            "seconds_alignment",
        ]
        head += [f"rmsd_{n}" for n in gt_names]
        wr.writerow(head)
        for h in history:
            for m in range(len(h["batch_weights"])):
                row = [
                    h["iteration"],
                    m,
                    h["loss"],
                    h["batch_weights"][m],
                    h["batch_weights_mean"][m],
                    h["grad_rms"][m],
                    h["step_rms"][m],
                    h["projection_rms"][m],
                    h["alignment_rmsd"][m],
                    h["moved_rms"][m],
                    h["blur_b_factor"],
                    h["seconds"],
                    h["seconds_likelihood"],
                    h["seconds_projection"],
                    h["seconds_alignment"],
                ]
                row += list(h.get("rmsd", [[]] * (m + 1))[m])
                wr.writerow(row)


def _move_into(src: Path, dst_folder: Path) -> None:
    import os

    for p in sorted(src.iterdir()):
        os.replace(p, dst_folder / p.name)


def write_run_outputs(prep: PreparedRun, result: OptimizeResult, out, cfg=None) -> dict[str, Path]:
    """Final outputs in ``out``, each written to a temporary file and renamed: walker_<m>.pdb,
    walkers_traj_<m>.pdb, weights.json/.csv (+ likelihood matrix, posterior samples,
    weights_posterior.png, assignments.png, as ``reweight`` writes them), history.json/.csv,
    loss.png, weights.png, rmsd.png. PDB coordinates are in the reference model's file frame
    (the centre removed for the likelihood is added back)."""
    import shutil
    import tempfile

    from cryoensemble.structure import write_multimodel_pdb, write_pdb
    from cryoensemble.workflows.optimize._plots import plot_history
    from cryoensemble.workflows.reweight._reweight import write_outputs

    out = Path(out)
    opt = prep.optimizer
    tmp = Path(tempfile.mkdtemp(prefix=".outputs.tmp-", dir=out))
    try:
        for m, pos in enumerate(result.positions):
            write_pdb(prep.template, tmp / f"walker_{m}.pdb", pos + prep.offset)
            frames = [f[m] + prep.offset for f in result.trajectory]
            write_multimodel_pdb(prep.template, frames, tmp / f"walkers_traj_{m}.pdb")
        if result.reweight is not None:
            rw = result.reweight
            rw.structures = [str(tmp.parent / f"walker_{m}.pdb") for m in range(len(rw.names))]
            rw.meta.update(
                {
                    "particles": str(getattr(prep.dataset, "star_path", "")),
                    "selection": getattr(cfg, "selection", None),
                    "iterations": len(result.history),
                }
            )
            write_outputs(rw, tmp, plots=True)
            if (tmp / "weights.png").exists():
                (tmp / "weights.png").rename(tmp / "weights_posterior.png")
        write_history(result.history, tmp, opt.ground_truth_names if opt.ground_truth else ())
        final = None if result.reweight is None else result.reweight.summary["mean"]
        plot_history(result.history, tmp, opt.ground_truth_names, opt.names, final)
        if (tmp / "weights_history.png").exists():
            (tmp / "weights_history.png").rename(tmp / "weights.png")
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {p.name: p for p in out.iterdir()}


def run_optimize(
    cfg,
    out,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    mesh=None,
    stop_after: int | None = None,
    command: str = "optimize",
) -> tuple[PreparedRun, OptimizeResult]:
    """The whole ``cryoensemble optimize``: validate the inputs, prepare ``out`` (refused if it
    exists, unless ``resume`` (continue from its checkpoint, or start when it has none) or
    ``overwrite``), run with a checkpoint per iteration, then write the outputs."""
    import logging
    import shutil

    import yaml

    out = Path(out)
    if out.exists() and not (resume or overwrite):
        raise InputError(f"output {out} already exists; pass --resume to continue or --overwrite")
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    lines: list[str] = []
    prep = prepare_run(cfg, mesh=mesh, log=lines.append)  # validates everything first
    has_ck = (out / "checkpoint.npz").exists()
    if resume and has_ck:  # refuse a foreign checkpoint before anything is written
        ck = load_checkpoint(out)
        if ck["fingerprint"] != prep.optimizer.fingerprint:
            raise InputError(
                f"{out}: the checkpoint belongs to a run with other settings or inputs (only "
                "'iterations' may change when resuming); use --overwrite to start again"
            )
    if out.exists() and overwrite and not (resume and has_ck):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"cryoensemble.optimize.{id(prep)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(out / "optimize.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    try:
        prep.optimizer.log = logger.info
        for line in lines:
            logger.info(line)
        logger.info(f"inputs: {json.dumps(prep.info, default=str)}")
        (out / "config.yaml").write_text(
            "# effective configuration (cryoensemble optimize --config config.yaml reproduces it)\n"
            + yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        )
        from cryoensemble.io._outputs import write_provenance

        write_provenance(out, command, cfg.to_dict(), cfg.seed)
        show = cfg.progress if progress is None else progress
        result = prep.optimizer.run(
            folder=out, resume=resume and has_ck, progress=show, stop_after=stop_after
        )
        if len(result.history) == cfg.iterations:
            write_run_outputs(prep, result, out, cfg)
            logger.info(f"finished; final weights {np.round(result.weights, 4).tolist()}")
    finally:
        logger.removeHandler(handler)
        handler.close()
    return prep, result
