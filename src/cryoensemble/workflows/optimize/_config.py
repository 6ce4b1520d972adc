"""Configuration of ensemble optimisation (``cryoensemble optimize --config FILE``).

Two validated pydantic models (unknown keys are rejected, every number is range-checked):

* :class:`OptimizeSettings` -- the algorithm alone (iterations, batch, step, optimizer, weights,
  alignment, seed, ...); the library's :class:`~.optimizer.EnsembleOptimizer` takes one, so
  in-memory experiments (the four-atom toy) need no files.
* :class:`OptimizeConfig` -- the settings plus the inputs (starting models, particles, reference
  model, ground truth), the imaging options and the prior projector (:class:`LangevinConfig`,
  :class:`ElasticNetworkConfig`, :class:`OpenMMConfig`).

Units: Angstrom (A) for lengths, kJ/mol for energies, A^2 for B-factors, kJ/mol/A^2 for spring
constants. See ``docs/optimize.md`` for a commented example file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cryoensemble.errors import ConfigError
from cryoensemble.io._config import read_mapping

__all__ = [
    "ElasticNetworkConfig",
    "LangevinConfig",
    "OpenMMConfig",
    "OptimizeConfig",
    "OptimizeSettings",
    "load_optimize_config",
]

#: Boltzmann constant in kJ/mol/K.
KB_KJ_PER_MOL_K = 0.0083144626


def _check_selection(v: str) -> str:
    key = v.strip()
    if key in ("all", "heavy", "calpha", "backbone") or (
        key.startswith("chain:") and key[6:].strip(", ")
    ):
        return key
    raise ValueError("must be all, heavy, calpha, backbone or chain:A,B")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ElasticNetworkConfig(_Strict):
    """The built-in prior: an elastic network over the selected atoms, built from a reference
    structure (each walker's own start unless ``reference`` says otherwise).

    Energy (kJ/mol), d_ij the current and d0_ij the reference distance (A)::

        U = sum_local 0.5 k_local (d_ij - d0_ij)^2                         (local springs)
          - sum_contacts depth exp(-(d_ij - d0_ij)^2 / (2 width^2))        (breakable contacts)
          + sum_other 0.5 k_repulsion max(0, repulsion_distance - d_ij)^2  (soft-core repulsion)

    Local springs join atoms closer than ``local_cutoff`` in the reference whose residues are at
    most ``sequence_separation`` apart in the same chain: they keep bonds, angles and the local
    fold. Contacts are all other pairs closer than ``contact_cutoff``: a Gaussian well that
    saturates (the force vanishes beyond a few ``width``), so domains can separate or close.
    The repulsion acts between atoms of neither set, from a neighbour list rebuilt at every
    projection.
    """

    reference: Literal["start", "reference"] = Field(
        "start",
        description="Build the network from each walker's starting model (start) or from the "
        "reference model of the run (reference).",
    )
    local_cutoff: float = Field(
        7.0, gt=0, le=30, description="Local springs: largest reference distance in A (0, 30]."
    )
    sequence_separation: int = Field(
        2,
        ge=0,
        le=50,
        description="Local springs: largest residue separation |i - j| in the same chain [0, 50].",
    )
    k_local: float = Field(
        10.0, gt=0, le=1e4, description="Spring constant of local springs, kJ/mol/A^2 (0, 1e4]."
    )
    contact_cutoff: float = Field(
        7.0, ge=0, le=30, description="Breakable contacts: largest reference distance, A [0, 30]."
    )
    contact_depth: float = Field(
        2.0, ge=0, le=1e3, description="Depth of each contact well, kJ/mol [0, 1e3] (0: none)."
    )
    contact_width: float = Field(
        1.0, gt=0, le=10, description="Width (standard deviation) of a contact well, A (0, 10]."
    )
    repulsion_distance: float = Field(
        3.0, ge=0, le=10, description="Soft-core repulsion below this distance, A [0, 10] (0: off)."
    )
    k_repulsion: float = Field(
        10.0, ge=0, le=1e4, description="Repulsion spring constant, kJ/mol/A^2 [0, 1e4]."
    )


class LangevinConfig(_Strict):
    """Steered overdamped Langevin dynamics (pure JAX) on the selected atoms::

        x <- x - h (grad U(x) + k (x - target)) + sqrt(2 h kT) xi,   xi ~ N(0, I)

    h is the time step times the mobility (A^2 per kJ/mol); stable for h * (stiffest spring
    sum + k) < 1. Unselected atoms (hydrogens) follow their residue's selected atoms rigidly.
    """

    n_steps: int = Field(100, ge=1, le=100000, description="Langevin steps per projection.")
    step: float = Field(
        2e-3,
        gt=0,
        le=1.0,
        description="h, time step x mobility, A^2 per kJ/mol (0, 1]; the thermal move per "
        "step is sqrt(2 h kT) A.",
    )
    k_target: float = Field(
        20.0, ge=0, le=1e5, description="k, steering spring to the target, kJ/mol/A^2 [0, 1e5]."
    )
    temperature: float = Field(
        300.0, ge=0, le=2000, description="Temperature in K [0, 2000] (0: gradient descent)."
    )
    energy: Literal["elastic", "none"] = Field(
        "elastic", description="Built-in energy: the elastic network (elastic) or none."
    )
    user_energy: str | None = Field(
        None,
        description="Extra energy 'package.module:function': a JAX function U(positions) -> "
        "scalar kJ/mol of the selected atoms' positions (n, 3) A; added to the built-in one.",
    )
    elastic: ElasticNetworkConfig = Field(
        default_factory=ElasticNetworkConfig, description="Elastic network parameters."
    )

    @field_validator("user_energy")
    @classmethod
    def _check_user_energy(cls, v):
        if v is None:
            return v
        mod, sep, fn = v.partition(":")
        if not sep or not mod.strip() or not fn.strip():
            raise ValueError("must be 'package.module:function'")
        return v.strip()

    @property
    def kT(self) -> float:
        """kT in kJ/mol."""
        return KB_KJ_PER_MOL_K * self.temperature


class OpenMMConfig(_Strict):
    """Molecular dynamics with OpenMM (optional extra ``cryoensemble[md]``); the options are
    passed to :class:`cryoensemble.ensemble._openmm.OpenMMProjector`."""

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


class OptimizeSettings(_Strict):
    """The algorithm's settings (no files)."""

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
        "squares on the selected atoms; orientation.superpose) or not (none).",
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
        """Extra B-factor (A^2) at outer iteration ``iteration`` (0-based)."""
        if self.blur_b_factor <= 0 or iteration >= self.blur_iterations:
            return 0.0
        return float(self.blur_b_factor * (1.0 - iteration / self.blur_iterations))


class OptimizeConfig(OptimizeSettings):
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
        return self.model_dump(mode="json")


def _format_validation_error(err: ValidationError, source: str, model: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown option (not a {model} field; check the spelling)"
        inp = e.get("input")
        shown = "" if isinstance(inp, dict) or e["type"] == "missing" else f" (got {inp!r})"
        parts.append(f"{loc}: {msg}{shown}")
    return f"{source}: invalid configuration: " + "; ".join(parts)


def _normalise_keys(d):
    if isinstance(d, dict):
        return {str(k).replace("-", "_"): _normalise_keys(v) for k, v in d.items()}
    return d


def load_optimize_config(path=None, **overrides) -> OptimizeConfig:
    """A validated :class:`OptimizeConfig` from a YAML/TOML file (relative paths resolve against
    the file's folder) updated with ``overrides`` (None values ignored). Raises
    :class:`~cryoensemble.errors.ConfigError` naming the file and every invalid field."""
    data: dict[str, Any] = {}
    source = "optimize config"
    if path is not None:
        path = Path(path)
        data = _normalise_keys(read_mapping(path))
        source = str(path)
        base = path.parent

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
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = OptimizeConfig(**data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source, "OptimizeConfig")) from None
    for name, v in [("step_size", cfg.step_size), ("learning_rate", cfg.learning_rate)]:
        if not math.isfinite(v):
            raise ConfigError(f"{source}: {name} must be finite (got {v})")
    return cfg
