"""Configuration of ensemble optimisation (``cryoensemble optimize --config FILE``).

Two validated pydantic models (unknown keys are rejected, every number is range-checked):

* :class:`EnsembleOptimizerConfig` -- the algorithm alone (iterations, batch, step, optimizer,
  weights, alignment, seed, ...); the library's :class:`~cryoensemble.workflows.optimize.
  EnsembleOptimizer` takes one, so in-memory experiments (the four-atom toy) need no files.
* :class:`OptimizeConfig` -- the algorithm plus the inputs (starting models, particles, reference
  model, ground truth), the imaging options and the prior projector (:class:`ProjectorConfig`).

The projector's kernel settings are the frozen dataclasses of :mod:`cryoensemble.ensemble`
(:class:`~cryoensemble.ensemble.LangevinConfig`, :class:`~cryoensemble.ensemble.
ElasticNetworkConfig`): pydantic validates those sections of a file against the ranges the
dataclasses state, so the kernels and the files share one definition.

Units: Angstrom (A) for lengths, kJ/mol for energies, A^2 for B-factors, kJ/mol/A^2 for spring
constants. See ``docs/optimize.md`` for a commented example file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryoensemble.ensemble import InnerStepConfig, LangevinConfig
from cryoensemble.io._config import read_mapping, validate_config

__all__ = [
    "EnsembleOptimizerConfig",
    "OpenMMConfig",
    "OptimizeConfig",
    "ProjectorConfig",
    "load_optimize_config",
]


def _check_selection(v: str) -> str:
    key = v.strip()
    if key in ("all", "heavy", "calpha", "backbone") or (
        key.startswith("chain:") and key[6:].strip(", ")
    ):
        return key
    raise ValueError("must be all, heavy, calpha, backbone or chain:A,B")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OpenMMConfig(_Strict):
    """Molecular dynamics with OpenMM (optional extra ``cryoensemble[md]``); the options are
    passed to :class:`cryoensemble.ensemble.OpenMMProjector`."""

    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the OpenMM projector (force field, steps, bias, ...).",
    )


class ProjectorConfig(_Strict):
    """Which prior projector pulls each walker towards its updated coordinates."""

    kind: Literal["langevin", "openmm", "none"] = Field(
        "langevin",
        description="langevin (pure JAX), openmm (molecular dynamics) or none (plain projected "
        "gradient steps, no prior; for tests).",
    )
    langevin: LangevinConfig = Field(default_factory=LangevinConfig)
    openmm: OpenMMConfig = Field(default_factory=OpenMMConfig)


class EnsembleOptimizerConfig(_Strict):
    """The algorithm's settings (no files): what :class:`EnsembleOptimizer` needs."""

    iterations: int = Field(40, ge=1, le=100000, description="T, outer iterations.")
    inner_steps: int = Field(
        5, ge=1, le=1000, description="S, likelihood gradient steps per outer iteration."
    )
    batch_size: int = Field(
        100, ge=1, le=100000, description="B, particles per inner step (drawn without replacement)."
    )
    step_size: float = Field(
        0.5,
        gt=0,
        le=20,
        description="Normalized optimizer: distance in A every selected atom moves per inner "
        "step (0, 20].",
    )
    optimizer: Literal["normalized", "adam", "sgd"] = Field(
        "normalized",
        description="normalized: x_i -= step_size g_i / |g_i| (the reference); adam or sgd: "
        "optax with learning_rate (state reset every outer iteration).",
    )
    learning_rate: float = Field(
        0.1,
        gt=0,
        le=1e6,
        description="adam: A per step (roughly); sgd: A per unit gradient (loss per A).",
    )
    likelihood_exact: bool = Field(
        True,
        description="Full marginal likelihood (True) or the reference -N log||r|| (False).",
    )
    mask_radius: float | None = Field(
        None, gt=0, description="Circular mask radius in A (default: all pixels)."
    )
    em_iterations: int = Field(
        50, ge=1, le=10000, description="EM iterations solving the batch weights (from uniform)."
    )
    blur_b_factor: float = Field(
        0.0,
        ge=0,
        le=2000,
        description="Coarse-to-fine: extra B-factor (A^2) on the model atoms at iteration 1, "
        "decreasing linearly to 0 at blur_iterations (0: off) [0, 2000].",
    )
    blur_iterations: int = Field(
        0, ge=0, description="Outer iterations over which the blur decreases to 0."
    )
    downsample: int = Field(
        1,
        ge=1,
        le=8,
        description="Likelihood phase on images Fourier-cropped by this factor (box / f pixels "
        "of f x pixel size A; the white noise stays white): f^2 fewer pixels, much faster; 1 = "
        "full size. The final weights always use the full images [1, 8].",
    )
    downsample_iterations: int | None = Field(
        None,
        ge=0,
        description="Use the downsampled images for the first this many outer iterations, then "
        "the full images (None: every iteration).",
    )
    align: Literal["kabsch", "dram", "none"] = Field(
        "kabsch",
        description="Re-align the walkers on the reference after every projection (least "
        "squares on the selected atoms; cryoensemble.pose.rigid_transform) or not (none).",
    )
    seed: int = Field(0, ge=0, description="Seed of every random draw (batches, dynamics).")
    trajectory_every: int = Field(
        1, ge=1, description="Record the walkers every this many iterations (trajectories)."
    )
    final_batch_size: int = Field(
        128, ge=1, description="Particles per batch for the final likelihood matrix."
    )
    credible_level: float = Field(0.9, gt=0, lt=1, description="Final weights: interval level.")
    n_samples: int = Field(2000, ge=1, description="Final weights: posterior (Gibbs) samples.")
    burn_in: int = Field(500, ge=0, description="Final weights: Gibbs iterations discarded.")

    @model_validator(mode="after")
    def _blur(self):
        if self.blur_b_factor > 0 and self.blur_iterations < 1:
            raise ValueError("blur_iterations must be >= 1 when blur_b_factor > 0")
        return self

    def blur_at(self, iteration: int) -> float:
        """Extra B-factor (A^2) at outer iteration ``iteration`` (0-based).

        Arguments:
            iteration: the outer iteration, from 0.
        """
        if self.blur_b_factor <= 0 or iteration >= self.blur_iterations:
            return 0.0
        return float(self.blur_b_factor * (1.0 - iteration / self.blur_iterations))

    def inner_step_config(self) -> InnerStepConfig:
        """The kernel settings of the jitted inner step."""
        return InnerStepConfig(
            step_size=self.step_size,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            em_iterations=self.em_iterations,
        )

    def fingerprint_dict(self) -> dict[str, Any]:
        """The settings that must not change when a run is resumed (all but the run length,
        the display and the final-weights sampling)."""
        free = ("iterations", "progress", "final_batch_size", "n_samples", "burn_in")
        free += ("credible_level",)
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in free}


class OptimizeConfig(EnsembleOptimizerConfig):
    """Everything ``cryoensemble optimize`` needs: inputs, imaging, projector and settings."""

    walkers: list[Path] = Field(
        ...,
        min_length=1,
        description="Starting model of every walker (PDB/mmCIF, same atoms in the same order); "
        "M = the number of entries (a file may repeat).",
    )
    particles: Path = Field(..., description="Particle STAR file (known poses and CTF).")
    reference: Path | None = Field(
        None,
        description="Reference model in the particles' frame (alignment and centring). "
        "Default: the first walker.",
    )
    ground_truth: list[Path] | None = Field(
        None, description="True states (PDB), for the RMSD of each walker per iteration."
    )
    rmsd_selection: str = Field(
        "calpha", description="Atoms for the ground-truth RMSD (after superposition)."
    )
    selection: str = Field(
        "heavy", description="Atoms in the likelihood and the elastic network (default heavy)."
    )
    center: bool = Field(
        True,
        description="Subtract the reference's centre of mass (all atoms) from every model, as "
        "'simulate' does (center: first with the reference first); False keeps the coordinates.",
    )
    align_start: bool = Field(
        True, description="Superpose each starting walker on the reference before iteration 1."
    )
    invert_contrast: bool = Field(False, description="Multiply the particle images by -1.")
    pixel_size: float | None = Field(
        None,
        gt=0,
        description="Read the particles at this pixel size (A, at least the stack's): images "
        "Fourier-cropped as read, before any downsample (docs/io.md). None: the stack's.",
    )
    apply_ctf: bool = Field(True, description="Apply the CTF to the model images.")
    pad_factor: float = Field(2.0, ge=1, le=4, description="Zero-padding before the CTF [1, 4].")
    chunk_size: int | None = Field(
        None, ge=1, description="Images formed at once (default: 1 on CPU, 64 on GPU)."
    )
    projector: ProjectorConfig = Field(default_factory=ProjectorConfig)
    progress: bool = Field(True, description="Show the progress bar.")

    @field_validator("selection", "rmsd_selection")
    @classmethod
    def _sel(cls, v: str) -> str:
        return _check_selection(v)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON/YAML types (paths as strings)."""
        return self.model_dump(mode="json")


def _normalise_keys(d):
    """``-`` in keys read as ``_`` (YAML files may use either), recursively."""
    if isinstance(d, dict):
        return {str(k).replace("-", "_"): _normalise_keys(v) for k, v in d.items()}
    return d


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The file's relative input paths made relative to ``base`` (the file's folder)."""

    def rel(p):
        return str(p) if Path(str(p)).is_absolute() else str(base / str(p))

    for key in ("walkers", "ground_truth"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
        if isinstance(data.get(key), list):
            data[key] = [rel(p) for p in data[key]]
    for key in ("particles", "reference"):
        if isinstance(data.get(key), str):
            data[key] = rel(data[key])
    return data


def load_optimize_config(path: str | Path | None = None, **overrides: Any) -> OptimizeConfig:
    """A validated :class:`OptimizeConfig` from a YAML/TOML file updated with ``overrides``.

    Raises :class:`~cryoensemble.errors.ConfigError` naming the file and every invalid field.

    Arguments:
        path: the configuration file (relative input paths resolve against its folder), or None.
        overrides: field values replacing the file's (None values ignored).
    """
    data: dict[str, Any] = {}
    source = "optimize config"
    if path is not None:
        data = _resolve_paths(_normalise_keys(read_mapping(path)), Path(path).parent)
        source = str(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(OptimizeConfig, data, source)
