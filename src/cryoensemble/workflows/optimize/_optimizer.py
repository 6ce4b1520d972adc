"""The ensemble optimizer: walkers' structures and weights from particle images under a prior.

The method of Silva-Sanchez, Thiede, Lederman and Cossio (2025), see ``docs/optimize.md``. M walkers
(all-atom models with the same atoms) and weights w on the simplex. Outer iteration t = 1..T:

1. **Likelihood phase**, S inner steps: draw B particles (numpy generator) and run the jitted
   inner step (:func:`cryoensemble.ensemble.make_inner_step`: batch log-likelihoods, EM weights,
   loss, gradient with w held fixed, the coordinate update).
2. **Prior projection**: each walker's :class:`~cryoensemble.ensemble.PriorProjector` pulls a
   physical model towards the moved coordinates.
3. **Re-alignment** of each walker (selected atoms) on the reference model
   (:func:`cryoensemble.pose.rigid_transform`).

At the end the weights are refitted on all particles with the reweighting machinery
(:func:`cryoensemble.workflows.reweight.reweight_matrix`: EM + Gibbs posterior). With several JAX
devices the batch is split over them (see :mod:`cryoensemble.ensemble`).

Every outer iteration is checkpointed (:mod:`._checkpoint`); a resumed run continues
bit-identically.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from cryoensemble.ensemble import PriorProjector, make_inner_step
from cryoensemble.errors import InputError
from cryoensemble.imaging import ImagingConfig
from cryoensemble.inference import LikelihoodConfig, likelihood_matrix
from cryoensemble.ndimage import circular_mask
from cryoensemble.parallel import particle_mesh
from cryoensemble.pose import rigid_transform, rmsd, superposed_rmsd
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.projection import default_half_width
from cryoensemble.scattering import GaussianAtoms
from cryoensemble.workflows.optimize._checkpoint import (
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from cryoensemble.workflows.optimize._config import EnsembleOptimizerConfig
from cryoensemble.workflows.reweight import ReweightResult, reweight_matrix

__all__ = ["EnsembleOptimizer", "OptimizeResult"]


def _rotate_state(arrays: dict[str, np.ndarray], r: np.ndarray, t: np.ndarray) -> dict:
    """A projector state moved rigidly: positions x -> x R^T + t, velocities v -> v R^T."""
    out = dict(arrays)
    out["positions"] = np.asarray(arrays["positions"], np.float64) @ r.T + t
    for name in ("velocities", "velocity"):
        if name in out and np.ndim(out[name]) == 2 and np.shape(out[name])[1] == 3:
            out[name] = np.asarray(out[name]) @ r.T
    return out


@dataclasses.dataclass
class OptimizeResult:
    """The outcome of :meth:`EnsembleOptimizer.run`.

    Attributes:
        positions: (M, n_atoms, 3) final walkers, all atoms, A.
        history: one record per outer iteration (loss, batch weights, timings, RMSDs, ...).
        trajectory: (F, M, n_atoms, 3) recorded walkers, A.
        trajectory_iterations: the outer iteration of every frame (0 = start).
        reweight: the final weights on all particles, or None (not refitted).
        names: the walkers' names.
    """

    positions: np.ndarray
    history: list[dict]
    trajectory: np.ndarray
    trajectory_iterations: list[int]
    reweight: ReweightResult | None
    names: list[str]

    @property
    def weights(self) -> np.ndarray:
        """Final weights: posterior means on all particles (batch weights if not refitted)."""
        if self.reweight is not None:
            return np.asarray(self.reweight.summary["mean"])
        return np.asarray(self.history[-1]["batch_weights"])


def _history_fields(rec: dict) -> dict[str, str]:
    """The progress meter's fields of one iteration's record."""
    return {
        "loss": f"{rec['loss']:.5g}",
        "w": "[" + " ".join(f"{x:.2f}" for x in rec["batch_weights"]) + "]",
        "rate": f"{rec['seconds']:.2f} s/it",
    }


def _imaging_at(
    dataset, blurred: GaussianAtoms, pad_factor, apply_ctf, chunk_size, f: int
) -> ImagingConfig:
    """The imaging of the likelihood on images Fourier-cropped by ``f`` (pixels f times larger)."""
    n = dataset.box_size // f
    if f > 1 and (dataset.box_size % f or n < 16 or n % 2):
        raise InputError(
            f"downsample {f}: the box of {dataset.box_size} pixels must be a multiple of "
            f"it and leave an even number of at least 16 pixels"
        )
    kw = {} if chunk_size is None else {"chunk_size": int(chunk_size)}
    return ImagingConfig(
        box_size=n,
        pixel_size=dataset.pixel_size * f,
        pad_factor=pad_factor,
        apply_ctf=apply_ctf,
        half_width=default_half_width(blurred, dataset.pixel_size * f),
        **kw,
    )


def _likelihood_at(dataset, settings: EnsembleOptimizerConfig, f: int) -> LikelihoodConfig:
    """The marginal likelihood (with the settings' circular mask) at downsampling ``f``."""
    mask = None
    if settings.mask_radius is not None:
        radius_px = dataset.mask_radius_px(settings.mask_radius, "mask_radius") / f
        if radius_px < 2:
            raise InputError(
                f"mask_radius {settings.mask_radius} A is under 2 pixels after downsample {f}"
            )
        mask = circular_mask(dataset.box_size // f, radius_px)
    return LikelihoodConfig(kind="marginal", mask=mask, exact=settings.likelihood_exact)


class EnsembleOptimizer:
    """Ensemble optimisation of M walkers against ``dataset`` (see the module docstring).

    Arguments:
        settings: the algorithm (:class:`EnsembleOptimizerConfig`).
        dataset: a :class:`~cryoensemble.io.ParticleDataset` or :class:`ArrayParticles`.
        atoms: Gaussian atoms of the selected atoms (amplitudes, variances; positions unused).
        start: (M, n_atoms, 3) starting positions of all atoms of every walker, in the particles'
            frame (A).
        selection: (n_sel,) indices of the atoms in the likelihood (into n_atoms).
        projector: the prior projector (:class:`~cryoensemble.ensemble.LangevinProjector`, ...).
        reference: (n_sel, 3) positions of the reference model's selected atoms (alignment).
        ground_truth: true states' positions (n_rmsd, 3) each, compared with the walkers' atoms
            ``rmsd_index`` after superposition, every iteration.
        ground_truth_names: a name per ground-truth state (default state_<k>).
        rmsd_index: (n_rmsd,) indices of the atoms compared with the ground truth (default all).
        imaging: the imaging settings (default from the dataset, ``apply_ctf`` and
            ``pad_factor``).
        apply_ctf: apply the CTF to the model images.
        pad_factor: zero-padding factor before the CTF.
        chunk_size: images formed at once (default: the imaging's).
        names: a name per walker (default walker_<m>).
        mesh: a 1-D "particles" mesh (default: all local devices if there are several).
        log: called with one line of text per iteration (e.g. a logger).
    """

    def __init__(
        self,
        settings: EnsembleOptimizerConfig,
        dataset,
        atoms: GaussianAtoms,
        start: Float[ArrayLike, "m n 3"],
        selection: ArrayLike,
        projector: PriorProjector,
        *,
        reference: Float[ArrayLike, "s 3"] | None = None,
        ground_truth: Sequence[Float[ArrayLike, "r 3"]] | None = None,
        ground_truth_names: Sequence[str] | None = None,
        rmsd_index: ArrayLike | None = None,
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
        # the likelihood's imaging at downsampling factor f (the atoms' half-width allows for
        # the blur of the first iteration)
        blurred = GaussianAtoms(
            jnp.zeros((atoms.n_atoms, 3)),
            self.amps,
            self.variances + settings.blur_b_factor / (8 * np.pi**2),
        )
        imaging_at = functools.partial(
            _imaging_at, dataset, blurred, pad_factor, apply_ctf, chunk_size
        )
        likelihood_at = functools.partial(_likelihood_at, dataset, settings)
        self.imaging = imaging_at(1) if imaging is None else imaging
        self.options = likelihood_at(1)
        if mesh is None and len(jax.local_devices()) > 1:
            mesh = particle_mesh()
        self.mesh = mesh
        n_dev = 1 if mesh is None else mesh.size
        self.pad_to = -(-self.batch_size // n_dev) * n_dev
        step = settings.inner_step_config()
        self._steps = {1: make_inner_step(self.imaging, self.options, step, mesh)}
        f = int(settings.downsample)
        if f > 1 and settings.downsample_iterations != 0:
            self._steps[f] = make_inner_step(imaging_at(f), likelihood_at(f), step, mesh)
        self.fingerprint = run_fingerprint(settings.fingerprint_dict(), start, n_part)

    def downsample_at(self, iteration: int) -> int:
        """The downsampling factor of outer iteration ``iteration`` (0-based).

        Arguments:
            iteration: the outer iteration, from 0.
        """
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
        """Every walker's state moved rigidly onto the reference (selected atoms), and the RMSDs."""
        if self.settings.align == "none" or self.reference is None:
            return states, [0.0] * len(states)
        out, rmsds = [], []
        for st in states:
            arrays = self.projector.state_dict(st)
            pos = np.asarray(arrays["positions"], np.float64)[self.selection]
            r, t = rigid_transform(pos, self.reference, method=self.settings.align)
            moved = _rotate_state(arrays, r, t)
            out.append(self.projector.load_state(moved))
            rmsds.append(float(rmsd(moved["positions"][self.selection], self.reference)))
        return out, rmsds

    def _positions(self, states) -> np.ndarray:
        return np.stack([np.asarray(self.projector.positions(s), np.float64) for s in states])

    def initial_states(self) -> list:
        """The projector states of the walkers at their starting positions."""
        return [
            self.projector.init_state(self.start[m], m, self.settings.seed)
            for m in range(self.n_walkers)
        ]

    # -- the loop -------------------------------------------------------------------------------
    def run(
        self,
        folder: str | Path | None = None,
        resume: bool = False,
        refit: bool = True,
        progress: AbstractProgressMeter = NoProgressMeter(),
        stop_after: int | None = None,
        checkpoint: dict | None = None,
    ) -> OptimizeResult:
        """Run (or continue) the optimisation, checkpointing into ``folder`` after every outer
        iteration when ``folder`` is given.

        Arguments:
            folder: the checkpoint folder (None: no checkpoints).
            resume: continue from the checkpoint in ``folder`` (refused if it belongs to other
                settings or inputs).
            refit: final weights on all particles (posterior) after the last iteration.
            progress: the progress meter (one task of ``iterations`` units).
            stop_after: return after that many outer iterations in total (tests of resuming).
            checkpoint: an already loaded and checked checkpoint to continue from (instead of
                ``resume``).
        """
        s = self.settings
        folder = None if folder is None else Path(folder)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        if resume and checkpoint is None:
            if folder is None:
                raise InputError("resume needs the run's folder")
            checkpoint = load_checkpoint(folder, fingerprint=self.fingerprint)
        rng = np.random.default_rng(s.seed)
        if checkpoint is not None:
            states = [self.projector.load_state(d) for d in checkpoint["walker_states"]]
            rng.bit_generator.state = checkpoint["rng_state"]
            history = checkpoint["history"]
            start_it = int(checkpoint["iteration"])
            traj = list(np.asarray(checkpoint["trajectory"], np.float32))
            traj_its = list(checkpoint["trajectory_iterations"])
            self.log(f"resumed from {folder} at iteration {start_it}")
        else:
            states = self.initial_states()
            history, start_it = [], 0
            traj = [self._positions(states).astype(np.float32)]
            traj_its = [0]
        end_it = s.iterations if stop_after is None else min(s.iterations, int(stop_after))
        n_part = len(self.dataset)
        with progress.task("optimize", total=s.iterations, completed=start_it, unit="it") as task:
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
                task.advance(1, **_history_fields(rec))
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

    def _likelihood_phase(self, it: int, pos, rng, n_part: int) -> tuple[np.ndarray, dict]:
        """``inner_steps`` jitted steps from ``pos`` (M, n_sel, 3); the moved positions (A) and
        the per-step statistics."""
        s = self.settings
        step_fn, init_opt = self._steps[self.downsample_at(it)]
        opt_state = init_opt(pos)
        variances = self.variances + jnp.float32(s.blur_at(it) / (8 * np.pi**2))
        stats: dict[str, list] = {"loss": [], "w": [], "grad_rms": [], "step_rms": []}
        for _ in range(s.inner_steps):
            idx = rng.choice(n_part, size=self.batch_size, replace=False)
            b = self.dataset.batch(np.sort(idx), pad_to=self.pad_to)
            batch = (b.images, b.rotations, b.shifts, b.ctf, b.valid)
            pos, opt_state, loss, w, st = step_fn(pos, opt_state, self.amps, variances, *batch)
            for key, value in [("loss", loss), ("w", w), *st.items()]:
                stats[key].append(value)
        target = np.asarray(pos, np.float64)  # blocks until the last step is done
        stats["loss"] = [float(x) for x in stats["loss"]]
        if not np.all(np.isfinite(target)) or not np.all(np.isfinite(stats["loss"])):
            raise InputError(
                f"iteration {it + 1}: non-finite loss or positions; check the particles and "
                "reduce step_size / learning_rate"
            )
        return target, {k: np.asarray(v, np.float64) for k, v in stats.items()}

    def _project(self, states, target: np.ndarray) -> tuple[list, list[float]]:
        """Every walker's prior projection towards ``target`` (M, n_sel, 3); the new states and
        the RMS distances (A) of their selected atoms from the target."""
        new_states, rms = [], []
        for m, st in enumerate(states):
            st2, full = self.projector.project(st, target[m], self.selection)
            new_states.append(st2)
            rms.append(float(rmsd(np.asarray(full)[self.selection], target[m])))
        return new_states, rms

    def _iteration(self, it: int, states, rng, n_part: int) -> dict:
        """One outer iteration: likelihood phase, prior projection, re-alignment; its record."""
        t0 = time.perf_counter()
        start_sel = self._positions(states)[:, self.selection]
        target, st = self._likelihood_phase(it, jnp.asarray(start_sel, jnp.float32), rng, n_part)
        t1 = time.perf_counter()
        new_states, proj_rms = self._project(states, target)
        t2 = time.perf_counter()
        new_states, align_rms = self._align(new_states)
        t3 = time.perf_counter()
        moved = self._positions(new_states)[:, self.selection] - start_sel.astype(np.float32)
        return {
            "iteration": it + 1,
            "loss": float(np.mean(st["loss"])),
            "loss_last": float(st["loss"][-1]),
            "batch_weights": st["w"][-1].tolist(),
            "batch_weights_mean": np.mean(st["w"], axis=0).tolist(),
            "grad_rms": np.mean(st["grad_rms"], axis=0).tolist(),
            "step_rms": np.mean(st["step_rms"], axis=0).tolist(),
            "projection_rms": proj_rms,
            "alignment_rmsd": align_rms,
            "moved_rms": np.sqrt(np.mean(np.sum(moved**2, axis=-1), axis=1)).tolist(),
            "blur_b_factor": self.settings.blur_at(it),
            "downsample": self.downsample_at(it),
            "seconds_likelihood": t1 - t0,
            "seconds_projection": t2 - t1,
            "seconds_alignment": t3 - t2,
            "seconds": t3 - t0,
            "_states": new_states,
        }

    def final_weights(
        self,
        positions: Float[ArrayLike, "m n 3"],
        progress: AbstractProgressMeter = NoProgressMeter(),
    ) -> ReweightResult:
        """Weights of the final walkers on ALL particles: the likelihood matrix, EM and the Gibbs
        posterior (:func:`cryoensemble.workflows.reweight.reweight_matrix`).

        Arguments:
            positions: (M, n_atoms, 3) the walkers, all atoms, A.
            progress: the progress meter of the likelihood matrix.
        """
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
