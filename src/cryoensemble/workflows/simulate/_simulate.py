"""Simulated particle datasets: configuration, parameter sampling and the streaming write loop.

A dataset is described by a :class:`SimulationConfig` (a validated pydantic model; the command
``cryoensemble simulate`` builds one from its flags and/or a YAML/TOML file). :func:`simulate_dataset`
then writes, into a folder:

* ``particles.star`` -- RELION 3.1 particle file (image names relative to the folder), with the
  ground truth in extra ``cryoensemble*`` columns (``cryoensembleStructureIndex``, 0-based, and
  ``cryoensembleStructureFile``, the structure file's base name);
* ``particles_00000.mrcs``, ... -- float32 MRC stacks of at most ``stack_size`` images each,
  written incrementally (memory does not grow with the number of particles);
* ``ground_truth.csv`` -- one row per particle: structure index and file, Euler angles, origins and
  CTF parameters;
* ``config.yaml`` -- the effective configuration (every default and value taken from a STAR file
  resolved) that reproduces the dataset; ``summary.json`` -- results (noise level, counts, timing);
* ``gallery.png`` -- example particles (clean and noisy) and the radially averaged power spectrum
  with the CTF^2 overlay (:mod:`cryoensemble.workflows.simulate._plots`).

Physics. Each structure becomes Peng Gaussian atoms (``selection``, optionally with its B-factors
and a global extra B-factor), centred on the mass-weighted centre of *all* its atoms (``center``).
Images are formed by :func:`cryoensemble.imaging.simulate_images` (exact pixel integrals, CTF on a
``pad_factor`` zero-padded box) and then multiplied by the interaction constant sigma_e(voltage):
**images are the dimensionless phase contrast** ``sigma_e * CTF (*) projected potential``, with
RELION's CTF sign (protein bright at low resolution, as RELION's contrast-inverted particles).

Sampling (all from ``numpy.random.default_rng(seed)``, in this order, one array of n each):
structure index (``rng.choice`` with the normalised weights); rot ~ U(-180, 180), tilt =
arccos(U(-1, 1)), psi ~ U(-180, 180) degrees (uniform on SO(3)); origin x, origin y ~
U(-shift_max, shift_max) Angstrom per axis (a square); mean defocus d ~ U(defocus_min, defocus_max),
astigmatism a ~ U(astigmatism_min, astigmatism_max), rlnDefocusU = d + a/2, rlnDefocusV = d - a/2,
rlnDefocusAngle ~ U(0, 180) degrees. With ``from_star`` only the structure index is drawn.

Noise. ``gaussian``: white noise of one standard deviation sigma for the whole dataset (as in real
data), sigma^2 = mean signal variance / SNR, the signal variance measured inside a disc of radius
``snr_mask_radius`` pixels (default box // 2) on the clean images of the first batch (at most
``batch_size`` particles); sigma is recorded in ``summary.json``. ``poisson``: shot noise at
``dose`` e/A^2 (:func:`cryoensemble.noise.poisson_images`). Noise keys are
``fold_in(fold_in(key(seed), 1), batch index)``, so a dataset is reproducible from its config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cryoensemble.data import bundled
from cryoensemble.errors import ConfigError, InputError
from cryoensemble.io._config import read_mapping

__all__ = [
    "DEFAULT_STRUCTURE",
    "SimulationConfig",
    "SimulationSummary",
    "clean_images",
    "draw_particles",
    "lowpass_filter",
    "load_config",
    "load_config_file",
    "prepare_atoms",
    "reference_map",
    "regenerate_images",
    "resolve_config",
    "simulate_dataset",
    "stack_name",
    "structure_center",
]

#: The bundled example: adenylate kinase (open state), all atoms including hydrogens.
DEFAULT_STRUCTURE = bundled("adk_open.pdb")

STAR_NAME = "particles.star"
GROUND_TRUTH_NAME = "ground_truth.csv"
CONFIG_NAME = "config.yaml"
SUMMARY_NAME = "summary.json"
GALLERY_NAME = "gallery.png"
N_GALLERY = 8

_DEFAULT_BOX = 128
_DEFAULT_PIXEL = 1.2


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
class SimulationConfig(BaseModel):
    """Everything that defines a simulated dataset. Units: Angstrom, kV, mm, degrees, e/A^2.

    Unknown keys are rejected. ``box_size``/``pixel_size`` default to 128 px / 1.2 A, or to the
    values of the ``from_star`` file (given values must then agree with it).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    structures: list[Path] = Field(
        default_factory=lambda: [DEFAULT_STRUCTURE],
        description="Structure files (PDB/mmCIF, first model). Default: the bundled adenylate "
        "kinase (adk_open.pdb).",
        min_length=1,
    )
    weights: list[float] | None = Field(
        None,
        description="Population weight of each structure (>= 0, normalised to sum 1). Default: "
        "equal weights.",
    )
    n_particles: int = Field(
        1000, ge=1, description="Number of particles (ignored with from_star)."
    )
    box_size: int | None = Field(None, ge=8, description="Image side in pixels (default 128).")
    pixel_size: float | None = Field(
        None, gt=0, description="Pixel size in Angstrom (default 1.2)."
    )
    voltage: float = Field(300.0, gt=0, description="Acceleration voltage in kV.")
    spherical_aberration: float = Field(2.7, ge=0, description="Spherical aberration Cs in mm.")
    amplitude_contrast: float = Field(
        0.1, ge=0, lt=1, description="Amplitude contrast Q0 (fraction, in [0, 1))."
    )
    defocus_min: float = Field(
        10000.0, gt=0, description="Smallest mean defocus in Angstrom (positive = underfocus)."
    )
    defocus_max: float = Field(20000.0, gt=0, description="Largest mean defocus in Angstrom.")
    astigmatism_min: float = Field(
        0.0, ge=0, description="Smallest astigmatism rlnDefocusU - rlnDefocusV in Angstrom."
    )
    astigmatism_max: float = Field(
        500.0, ge=0, description="Largest astigmatism rlnDefocusU - rlnDefocusV in Angstrom."
    )
    phase_shift: float = Field(0.0, description="Phase-plate phase shift in degrees (all).")
    ctf_b_factor: float = Field(
        0.0, description="CTF envelope B-factor rlnCtfBfactor in A^2 (all particles)."
    )
    shift_max: float = Field(
        5.0, ge=0, description="Origins uniform in [-shift_max, shift_max] Angstrom per axis."
    )
    noise: Literal["none", "gaussian", "poisson"] = Field(
        "gaussian", description="Noise model: none, gaussian (at snr) or poisson (at dose)."
    )
    snr: float | None = Field(
        0.1, gt=0, description="Signal-to-noise ratio (variance ratio) for gaussian noise."
    )
    snr_mask_radius: float | None = Field(
        None,
        gt=0,
        description="Radius in pixels of the disc where the signal variance is "
        "measured for the SNR (default box_size // 2).",
    )
    dose: float | None = Field(
        None, gt=0, description="Electron dose in e/A^2 for poisson noise (required then)."
    )
    pad_factor: float = Field(
        2.0, ge=1, description="Zero-padding factor of the box before the CTF (1 = none)."
    )
    apply_ctf: bool = Field(True, description="Apply the CTF (False: projected potential).")
    selection: str = Field(
        "all", description="Atoms imaged: all, heavy (no H), calpha, backbone, chain:A,B."
    )
    use_b_factors: bool = Field(
        False, description="Blur each atom by its B-factor from the structure file."
    )
    b_factor: float = Field(
        0.0, ge=0, description="Global B-factor in A^2 added to every atom (blurs the model)."
    )
    center: Literal["each", "first", "none"] = Field(
        "each",
        description="Centring: each structure on its own centre of mass (each), all on the "
        "first structure's (first), or the files' coordinates (none); the centre is placed at "
        "pixel box_size // 2.",
    )
    seed: int = Field(0, ge=0, description="Random seed of every draw (parameters and noise).")
    from_star: Path | None = Field(
        None,
        description="Simulate at the poses, origins and CTF parameters of this particle STAR file.",
    )
    check_stacks: bool = Field(
        True, description="With from_star: validate the file's image stacks (exist, size, count)."
    )
    stack_size: int = Field(10000, ge=1, description="Images per MRC stack file.")
    batch_size: int = Field(
        512, ge=1, description="Particles simulated at once (bounds memory; also the noise pilot)."
    )
    gallery: bool = Field(True, description="Write gallery.png.")

    @field_validator("selection")
    @classmethod
    def _check_selection(cls, v: str) -> str:
        key = v.strip()
        if key in ("all", "heavy", "calpha", "backbone") or (
            key.startswith("chain:") and key[6:].strip(", ")
        ):
            return key
        raise ValueError("must be all, heavy, calpha, backbone or chain:A,B")

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, v):
        if v is None:
            return v
        if any((not math.isfinite(w)) or w < 0 for w in v):
            raise ValueError(f"every weight must be a finite number >= 0, got {v}")
        if sum(v) <= 0:
            raise ValueError(f"weights must not all be zero, got {v}")
        return v

    @model_validator(mode="after")
    def _check_consistency(self):
        if self.weights is not None and len(self.weights) != len(self.structures):
            raise ValueError(
                f"weights: {len(self.weights)} weights given for {len(self.structures)} structures"
            )
        if self.defocus_min > self.defocus_max:
            raise ValueError(
                f"defocus_min ({self.defocus_min}) must be <= defocus_max ({self.defocus_max})"
            )
        if self.astigmatism_min > self.astigmatism_max:
            raise ValueError(
                f"astigmatism_min ({self.astigmatism_min}) must be <= astigmatism_max "
                f"({self.astigmatism_max})"
            )
        if self.astigmatism_max / 2 >= self.defocus_min:
            raise ValueError(
                f"astigmatism_max / 2 ({self.astigmatism_max / 2}) must be < defocus_min "
                f"({self.defocus_min}) so that rlnDefocusV stays positive"
            )
        if self.noise == "gaussian" and self.snr is None:
            raise ValueError("snr: required when noise = 'gaussian'")
        if self.noise == "poisson" and self.dose is None:
            raise ValueError("dose: required when noise = 'poisson' (electrons per A^2)")
        return self

    @property
    def normalised_weights(self) -> np.ndarray:
        w = np.ones(len(self.structures)) if self.weights is None else np.asarray(self.weights)
        return np.asarray(w, dtype=np.float64) / float(np.sum(w))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able dictionary (paths as strings)."""
        return self.model_dump(mode="json")


def _format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown option (not a SimulationConfig field; check the spelling)"
        inp = e.get("input")
        shown = "" if isinstance(inp, dict) or e["type"] == "missing" else f" (got {inp!r})"
        parts.append(f"{loc}: {msg}{shown}")
    return f"{source}: invalid configuration: " + "; ".join(parts)


def load_config_file(path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config file into a dict.

    Keys are :class:`SimulationConfig` field names (``-`` is accepted for ``_``). Relative paths
    (``structures``, ``from_star``) are resolved against the config file's folder.
    """
    path = Path(path)
    data = read_mapping(path)
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    base = path.parent

    def rel(p):
        return str(p) if Path(str(p)).is_absolute() else str(base / str(p))

    if isinstance(data.get("structures"), str):
        data["structures"] = [data["structures"]]
    if isinstance(data.get("structures"), list):
        data["structures"] = [rel(p) for p in data["structures"]]
    if isinstance(data.get("from_star"), str):
        data["from_star"] = rel(data["from_star"])
    return data


def load_config(config_file=None, **overrides) -> SimulationConfig:
    """A validated :class:`SimulationConfig`: defaults < ``config_file`` < ``overrides``.

    Overrides whose value is ``None`` are ignored (so unset command-line flags do not override
    the file). Raises :class:`ConfigError` naming the source and every invalid field.
    """
    data: dict[str, Any] = {}
    source = "command line"
    if config_file is not None:
        data = load_config_file(config_file)
        source = f"{config_file} (with command-line options)"
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SimulationConfig(**data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


# --------------------------------------------------------------------------------------------
# structures
# --------------------------------------------------------------------------------------------
def structure_center(model) -> np.ndarray:
    """The centre placed at pixel/voxel N // 2: the mass-weighted centre of all atoms (3,) A."""
    return np.asarray(model.center_of_mass(), dtype=np.float64)


def prepare_atoms(
    model,
    center: np.ndarray | None,
    selection: str = "all",
    use_b_factors: bool = False,
    b_factor: float = 0.0,
):
    """Gaussian atoms of ``model`` with ``center`` (A, or None) moved to the origin.

    ``b_factor`` (A^2) is added to every atom (variance + B / (8 pi^2)), on top of the file's
    B-factors when ``use_b_factors``. Shared by ``simulate`` and ``render`` so that both place a
    model identically.
    """
    import equinox as eqx

    from cryoensemble.scattering import gaussian_atoms

    sel = model.selection(selection)
    if sel.n_atoms == 0:
        raise InputError(f"selection {selection!r} leaves no atoms")
    atoms = gaussian_atoms(sel, center=center, use_b_factors=use_b_factors)
    if b_factor:
        atoms = eqx.tree_at(
            lambda a: a.variances, atoms, atoms.variances + float(b_factor) / (8 * np.pi**2)
        )
    return atoms


def _load_structures(config: SimulationConfig):
    from cryoensemble.structure import read_structure

    models = [read_structure(p) for p in config.structures]
    if config.center == "each":
        centers = [structure_center(m) for m in models]
    elif config.center == "first":
        centers = [structure_center(models[0])] * len(models)
    else:
        centers = [None] * len(models)
    atoms = [
        prepare_atoms(m, c, config.selection, config.use_b_factors, config.b_factor)
        for m, c in zip(models, centers, strict=True)
    ]
    return atoms, centers


# --------------------------------------------------------------------------------------------
# particle parameters
# --------------------------------------------------------------------------------------------
def stack_name(index: int) -> str:
    """File name of the ``index``-th (0-based) stack: ``particles_00000.mrcs``."""
    return f"particles_{index:05d}.mrcs"


def _image_names(n: int, stack_size: int) -> list[str]:
    return [f"{i % stack_size + 1:06d}@{stack_name(i // stack_size)}" for i in range(n)]


def _structure_labels(config: SimulationConfig) -> list[str]:
    return ["_".join(Path(p).name.split()) for p in config.structures]


def draw_particles(config: SimulationConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The optics and particle tables of a new dataset, drawn from ``config.seed``.

    ``config`` must be resolved (box and pixel size set; see :func:`resolve_config`). The
    particle table has RELION's columns (float64) and the ground-truth columns
    ``cryoensembleStructureIndex`` and ``cryoensembleStructureFile``; image names point at
    ``particles_NNNNN.mrcs`` stacks of ``stack_size`` images.
    """
    rng = np.random.default_rng(config.seed)
    n = config.n_particles
    k = len(config.structures)
    structure = rng.choice(k, size=n, p=config.normalised_weights)
    rot = rng.uniform(-180.0, 180.0, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(-180.0, 180.0, n)
    sx = rng.uniform(-config.shift_max, config.shift_max, n)
    sy = rng.uniform(-config.shift_max, config.shift_max, n)
    defocus = rng.uniform(config.defocus_min, config.defocus_max, n)
    astig = rng.uniform(config.astigmatism_min, config.astigmatism_max, n)
    angle = rng.uniform(0.0, 180.0, n)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnVoltage": [float(config.voltage)],
            "rlnSphericalAberration": [float(config.spherical_aberration)],
            "rlnAmplitudeContrast": [float(config.amplitude_contrast)],
            "rlnImagePixelSize": [float(config.pixel_size)],
            "rlnImageSize": [int(config.box_size)],
            "rlnImageDimensionality": [2],
        }
    )
    labels = _structure_labels(config)
    particles = pd.DataFrame(
        {
            "rlnImageName": _image_names(n, config.stack_size),
            "rlnAngleRot": rot,
            "rlnAngleTilt": tilt,
            "rlnAnglePsi": psi,
            "rlnOriginXAngst": sx,
            "rlnOriginYAngst": sy,
            "rlnDefocusU": defocus + astig / 2,
            "rlnDefocusV": defocus - astig / 2,
            "rlnDefocusAngle": angle,
            "rlnPhaseShift": np.full(n, float(config.phase_shift)),
            "rlnCtfBfactor": np.full(n, float(config.ctf_b_factor)),
            "rlnCtfScalefactor": np.ones(n),
            "rlnOpticsGroup": np.ones(n, dtype=np.int64),
            "cryoensembleStructureIndex": structure.astype(np.int64),
            "cryoensembleStructureFile": [labels[i] for i in structure],
        }
    )
    return optics, particles


def _particles_from_star(config: SimulationConfig):
    """Optics and particle tables of ``config.from_star`` with our image names and ground truth."""
    from cryoensemble.io import ParticleDataset, read_particles

    src = config.from_star
    if config.check_stacks:
        table = ParticleDataset(src, require_poses=True).table
    else:
        table = read_particles(src, require_poses=True)
    optics = table.optics.copy()
    rows = table.optics_rows()
    used = np.unique(rows)
    px = optics["rlnImagePixelSize"].to_numpy(np.float64)[used]
    sizes = optics["rlnImageSize"].to_numpy(np.int64)[used]
    if np.ptp(px) > 1e-6 * px.max() or len(np.unique(sizes)) > 1:
        raise InputError(
            f"{src}: optics groups differ in rlnImagePixelSize or rlnImageSize; simulation needs "
            "a single pixel size and box size"
        )
    particles = table.particles.copy()
    n = len(particles)
    rng = np.random.default_rng(config.seed)
    structure = rng.choice(len(config.structures), size=n, p=config.normalised_weights)
    labels = _structure_labels(config)
    particles["cryoensembleSourceImageName"] = particles["rlnImageName"].astype(str)
    particles["rlnImageName"] = _image_names(n, config.stack_size)
    particles["cryoensembleStructureIndex"] = structure.astype(np.int64)
    particles["cryoensembleStructureFile"] = [labels[i] for i in structure]
    return optics, particles, float(px[0]), int(sizes[0])


def resolve_config(config: SimulationConfig):
    """Fill the defaults that depend on data and draw the particles.

    Returns ``(resolved_config, optics, particles)``: with ``from_star`` the box size, pixel size,
    number of particles and the optics of the file (first optics group's voltage, Cs and Q0 as
    the config's; each particle keeps its own group) are taken from it; given box/pixel sizes must
    agree with the file.
    """
    config = config.model_copy(
        update={
            "structures": [Path(p).absolute() for p in config.structures],
            "from_star": None if config.from_star is None else Path(config.from_star).absolute(),
        }
    )
    if config.from_star is not None:
        optics, particles, px, box = _particles_from_star(config)
        src = config.from_star
        if config.box_size is not None and config.box_size != box:
            raise ConfigError(
                f"box_size: {config.box_size} given, but rlnImageSize in {src} is {box}; "
                "omit --box-size with --from-star or make them agree"
            )
        if config.pixel_size is not None and abs(config.pixel_size - px) > 1e-6 * px:
            raise ConfigError(
                f"pixel_size: {config.pixel_size} A given, but rlnImagePixelSize in {src} is "
                f"{px} A; omit --pixel-size with --from-star or make them agree"
            )
        first = optics.iloc[0]
        try:
            resolved = config.model_copy(
                update={
                    "box_size": box,
                    "pixel_size": px,
                    "n_particles": len(particles),
                    "voltage": float(first["rlnVoltage"]),
                    "spherical_aberration": float(first["rlnSphericalAberration"]),
                    "amplitude_contrast": float(first["rlnAmplitudeContrast"]),
                }
            )
            resolved = SimulationConfig(**resolved.model_dump())
        except ValidationError as err:
            raise ConfigError(_format_validation_error(err, str(src))) from None
        return resolved, optics, particles
    resolved = config.model_copy(
        update={
            "box_size": config.box_size or _DEFAULT_BOX,
            "pixel_size": config.pixel_size or _DEFAULT_PIXEL,
        }
    )
    optics, particles = draw_particles(resolved)
    return resolved, optics, particles


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def _clean_images(atoms, rotations, shifts, ctf, imaging_config, mesh=None):
    import jax.numpy as jnp

    from cryoensemble.imaging._pipeline import simulate_images
    from cryoensemble.scattering import interaction_constant

    images = simulate_images(atoms, rotations, shifts, ctf, imaging_config, mesh=mesh)
    b = rotations.shape[0]
    sigma_e = jnp.broadcast_to(interaction_constant(ctf.voltage), (b,)).astype(images.dtype)
    return images * sigma_e[:, None, None]


@functools.cache
def _clean_images_jit():
    import equinox as eqx

    return eqx.filter_jit(_clean_images)


def clean_images(atoms, rotations, shifts, ctf, imaging_config, mesh=None):
    """Noise-free images in phase-contrast units: sigma_e(voltage) x the simulated potential.

    Arguments as :func:`cryoensemble.imaging.simulate_images` (``shifts`` are RELION origins in
    A); ``ctf.voltage`` (kV, per particle) gives the interaction constant. Jit-compiled; returns
    a JAX array (b, n, n).
    """
    return _clean_images_jit()(atoms, rotations, shifts, ctf, imaging_config, mesh=mesh)


def _bucket(n: int, batch_size: int, single: bool) -> int:
    """Padded size of a group of ``n`` particles of one structure in a batch.

    Shapes are static under jit, so groups are padded to few sizes: the full ``batch_size`` when
    the batch holds one structure (one compilation), else the smallest of batch_size / 8, / 4,
    / 2, / 1 that holds them (at most four compilations per structure).
    """
    if single or n >= batch_size:
        return max(n, batch_size)
    size = max(1, batch_size // 8)
    while size < n:
        size *= 2
    return min(size, batch_size)


@dataclasses.dataclass
class SimulationSummary:
    """What :func:`simulate_dataset` did. Times in seconds; noise_sigma in image units."""

    folder: Path
    star_path: Path
    n_particles: int
    particles_per_structure: list[int]
    stacks: list[str]
    box_size: int
    pixel_size: float
    noise: str
    noise_sigma: float | None
    snr_mask_radius_px: float | None
    structure_centers: list[list[float] | None]
    n_devices: int
    elapsed_s: float
    images_per_s: float
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["folder"] = str(self.folder)
        d["star_path"] = str(self.star_path)
        return d

    def to_json_record(self) -> dict[str, Any]:
        """As :meth:`to_dict` with the STAR file relative to the folder (for ``summary.json``)."""
        d = self.to_dict()
        del d["folder"]
        d["star_path"] = self.star_path.name
        return d


class _StackSink:
    """Routes consecutive images into ``particles_NNNNN.mrcs`` stacks of ``stack_size`` each."""

    def __init__(self, folder: Path, n: int, stack_size: int, box: int, pixel: float):
        self.folder, self.n, self.stack_size = folder, n, stack_size
        self.box, self.pixel = box, pixel
        self.count = 0
        self.writer = None
        self.names: list[str] = []

    def append(self, images: np.ndarray) -> None:
        from cryoensemble.io import MrcStackWriter

        start = 0
        while start < len(images):
            if self.writer is None:
                s = self.count // self.stack_size
                size = min(self.stack_size, self.n - s * self.stack_size)
                self.writer = MrcStackWriter(
                    self.folder / stack_name(s), self.box, self.pixel, n_images=size
                )
                self.writer.open()
                self.names.append(stack_name(s))
            room = self.writer.n_images - self.writer.count
            take = min(room, len(images) - start)
            self.writer.append(images[start : start + take])
            start += take
            self.count += take
            if self.writer.count == self.writer.n_images:
                self.writer.close()
                self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


class _BackgroundWriter:
    """Writes batches in a thread (overlapping disk writes with simulation); at most 2 queued.

    An exception in the thread is re-raised in the caller at the next :meth:`put` or at
    :meth:`finish`.
    """

    def __init__(self, sink: _StackSink, depth: int = 2):
        import queue
        import threading

        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="cryoensemble-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                self.sink.append(item)
            except BaseException as err:  # re-raised in the main thread
                self.error = err

    def _raise(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def put(self, images: np.ndarray) -> None:
        self._raise()
        self.queue.put(images)

    def finish(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def stop(self) -> None:
        """Stop after an error in the caller (queued batches are discarded)."""
        if self.thread.is_alive():
            self.error = self.error or RuntimeError("stopped")
            self.queue.put(None)
            self.thread.join()


def _noise_sigma(clean: np.ndarray, snr: float, mask_radius: float) -> float:
    """Dataset noise level: sqrt(mean masked signal variance of the pilot images / snr)."""
    import jax

    from cryoensemble.noise import snr_noise_sigma

    fn = jax.jit(lambda c: snr_noise_sigma(c, snr, mask_radius)[0])
    return float(fn(clean))


def _gaussian(key, clean, sigma):
    from cryoensemble.noise import add_gaussian_noise

    return add_gaussian_noise(key, clean, sigma)


def _poisson(key, clean, dose, pixel_size):
    from cryoensemble.noise import poisson_images

    return poisson_images(key, clean, dose, pixel_size)


@functools.cache
def _noise_functions():
    """Jit-compiled noise functions (compiled once per shape, shared by all runs)."""
    import jax

    return jax.jit(_gaussian), jax.jit(_poisson, static_argnums=(2, 3))


def _gaussian_jit(key, clean, sigma):
    return _noise_functions()[0](key, clean, sigma)


def _poisson_jit(key, clean, dose, pixel_size):
    return _noise_functions()[1](key, clean, dose, pixel_size)


def _imaging_configs(atoms_list, config: SimulationConfig):
    from cryoensemble.imaging._pipeline import ImagingConfig

    return [
        ImagingConfig.for_atoms(
            a,
            config.box_size,
            config.pixel_size,
            pad_factor=float(config.pad_factor),
            apply_ctf=bool(config.apply_ctf),
        )
        for a in atoms_list
    ]


def _mask_radius(config: SimulationConfig) -> float:
    if config.snr_mask_radius is not None:
        return float(config.snr_mask_radius)
    return float(int(config.box_size) // 2)


def _iter_images(resolved: SimulationConfig, optics, particles, atoms_list, mesh):
    """Yield ``(indices, clean, noisy, sigma)`` batch by batch (the core of the simulation).

    ``resolved`` is a resolved config, ``optics``/``particles`` the normalised tables; every
    per-particle quantity is taken from the tables (float32, as :func:`particle_arrays` does),
    so re-running on a table read back from disk gives the same images.
    """
    import jax

    from cryoensemble.io._star import ParticleTable, arrays_from_columns, particle_columns

    imaging = _imaging_configs(atoms_list, resolved)
    n = len(particles)
    box, px = int(resolved.box_size), float(resolved.pixel_size)
    columns = particle_columns(ParticleTable(optics=optics, particles=particles, path=None))
    structure = particles["cryoensembleStructureIndex"].to_numpy(np.int64)
    if structure.size and (structure.min() < 0 or structure.max() >= len(atoms_list)):
        raise InputError(
            f"cryoensembleStructureIndex out of range [0, {len(atoms_list)}) for the structures"
        )
    noise_key = jax.random.fold_in(jax.random.key(resolved.seed), 1)
    bs = int(resolved.batch_size)
    sigma = None
    for b_index, start in enumerate(range(0, n, bs)):
        idx = np.arange(start, min(n, start + bs))
        clean = np.empty((bs, box, box), np.float32)
        present = np.unique(structure[idx])
        for s in present:
            members = np.flatnonzero(structure[idx] == s)
            size = _bucket(len(members), bs, single=len(present) == 1)
            padded = np.concatenate(
                [members, np.full(size - len(members), members[-1], members.dtype)]
            )
            arrays = arrays_from_columns(columns, idx[padded])
            out = clean_images(
                atoms_list[s],
                arrays["rotations"],
                arrays["shifts"],
                arrays["ctf"],
                imaging[s],
                mesh=mesh,
            )
            clean[members] = np.asarray(out)[: len(members)]
        clean[len(idx) :] = 0.0
        key = jax.random.fold_in(noise_key, b_index)
        if resolved.noise == "gaussian":
            if sigma is None:
                sigma = _noise_sigma(clean[: len(idx)], float(resolved.snr), _mask_radius(resolved))
            noisy = np.asarray(_gaussian_jit(key, clean, np.float32(sigma)))
        elif resolved.noise == "poisson":
            noisy = np.asarray(_poisson_jit(key, clean, float(resolved.dose), px))
        else:
            noisy = clean
        yield idx, clean[: len(idx)], noisy[: len(idx)], sigma


def regenerate_images(folder, mesh=None) -> tuple[np.ndarray, np.ndarray]:
    """Re-simulate a dataset written by :func:`simulate_dataset` from what is on disk.

    Reads ``config.yaml`` and the parameters of ``particles.star`` in ``folder`` and returns
    ``(clean, noisy)`` float32 arrays (n, N, N) held in memory (for checks of small datasets):
    ``noisy`` equals the images in the stacks bit for bit.
    """
    import yaml

    from cryoensemble.io import read_particles
    from cryoensemble.parallel import particle_mesh

    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path}: not found (not a cryoensemble simulation folder?)")
    try:
        resolved = SimulationConfig(**yaml.safe_load(cfg_path.read_text()))
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, str(cfg_path))) from None
    table = read_particles(folder / STAR_NAME)
    atoms_list, _ = _load_structures(resolved)
    mesh = particle_mesh() if mesh is None else mesh
    batches = list(_iter_images(resolved, table.optics, table.particles, atoms_list, mesh))
    clean = np.concatenate([b[1] for b in batches])
    noisy = np.concatenate([b[2] for b in batches])
    return clean, noisy


def simulate_dataset(
    config: SimulationConfig,
    folder,
    progress: Callable[[int, int], None] | None = None,
    mesh=None,
) -> SimulationSummary:
    """Simulate the dataset of ``config`` into the existing, empty ``folder``.

    Images are formed ``config.batch_size`` particles at a time and streamed into the stacks
    (written by a background thread, at most two batches queued), so memory does not depend on
    the number of particles. ``progress(done, total)`` is called after every batch. ``mesh``
    defaults to :func:`cryoensemble.parallel.particle_mesh` (all devices). On an exception the
    stack being written is removed but finished files stay in ``folder``: write into a temporary
    folder and rename it on success (as the command line does) to never leave partial output.
    """
    from cryoensemble.io import write_particles
    from cryoensemble.parallel import particle_mesh

    t0 = time.perf_counter()
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: output folder does not exist")
    resolved, optics, particles = resolve_config(config)
    atoms_list, centers = _load_structures(resolved)
    mesh = particle_mesh() if mesh is None else mesh
    n = len(particles)
    box, px = int(resolved.box_size), float(resolved.pixel_size)
    structure = particles["cryoensembleStructureIndex"].to_numpy(np.int64)
    mask_radius = _mask_radius(resolved)
    sigma = None
    gallery_clean = gallery_noisy = None
    sink = _StackSink(folder, n, int(resolved.stack_size), box, px)
    writer = _BackgroundWriter(sink)
    try:
        for idx, clean, noisy, batch_sigma in _iter_images(
            resolved, optics, particles, atoms_list, mesh
        ):
            sigma = batch_sigma
            if gallery_clean is None:
                gallery_clean, gallery_noisy = clean[:N_GALLERY].copy(), noisy[:N_GALLERY].copy()
            writer.put(noisy)
            if progress is not None:
                progress(int(idx[-1]) + 1, n)
        writer.finish()
    except BaseException:
        writer.stop()
        sink.abort()
        raise
    elapsed = time.perf_counter() - t0

    star = folder / STAR_NAME
    write_particles(star, (optics, particles))
    _write_ground_truth(folder / GROUND_TRUTH_NAME, particles)
    import yaml

    (folder / CONFIG_NAME).write_text(
        "# Effective configuration of this dataset (cryoensemble simulate --config "
        f"{CONFIG_NAME} reproduces it)\n" + yaml.safe_dump(resolved.to_dict(), sort_keys=False)
    )
    summary = SimulationSummary(
        folder=folder,
        star_path=star,
        n_particles=n,
        particles_per_structure=np.bincount(structure, minlength=len(atoms_list)).tolist(),
        stacks=sink.names,
        box_size=box,
        pixel_size=px,
        noise=resolved.noise,
        noise_sigma=sigma,
        snr_mask_radius_px=mask_radius if resolved.noise == "gaussian" else None,
        structure_centers=[None if c is None else [float(x) for x in c] for c in centers],
        n_devices=int(mesh.devices.size),
        elapsed_s=elapsed,
        images_per_s=n / elapsed,
        config=resolved.to_dict(),
    )
    if resolved.gallery:
        from cryoensemble.optics import CTFParams
        from cryoensemble.workflows.simulate._plots import save_gallery

        first = particles.iloc[0]
        group = optics.iloc[
            int(np.flatnonzero(optics["rlnOpticsGroup"] == first["rlnOpticsGroup"])[0])
        ]
        ctf0 = None
        if resolved.apply_ctf:
            ctf0 = CTFParams(
                defocus_u=float(first["rlnDefocusU"]),
                defocus_v=float(first["rlnDefocusV"]),
                defocus_angle=float(first["rlnDefocusAngle"]),
                voltage=float(group["rlnVoltage"]),
                spherical_aberration=float(group["rlnSphericalAberration"]),
                amplitude_contrast=float(group["rlnAmplitudeContrast"]),
                phase_shift=float(first["rlnPhaseShift"]),
                b_factor=float(first["rlnCtfBfactor"]),
            )
        save_gallery(
            folder / GALLERY_NAME,
            gallery_clean,
            gallery_noisy,
            px,
            ctf0,
            title=f"{n} particles, {box} x {box} px at {px:g} A, noise {resolved.noise}",
        )
    summary.elapsed_s = time.perf_counter() - t0
    summary.images_per_s = n / summary.elapsed_s
    (folder / SUMMARY_NAME).write_text(json.dumps(summary.to_json_record(), indent=2) + "\n")
    return summary


def _write_ground_truth(path: Path, particles: pd.DataFrame) -> None:
    cols = {
        "particle": np.arange(len(particles)),
        "image_name": particles["rlnImageName"],
        "structure_index": particles["cryoensembleStructureIndex"],
        "structure_file": particles["cryoensembleStructureFile"],
        "rot_deg": particles["rlnAngleRot"],
        "tilt_deg": particles["rlnAngleTilt"],
        "psi_deg": particles["rlnAnglePsi"],
        "origin_x_A": particles["rlnOriginXAngst"],
        "origin_y_A": particles["rlnOriginYAngst"],
        "defocus_u_A": particles["rlnDefocusU"],
        "defocus_v_A": particles["rlnDefocusV"],
        "defocus_angle_deg": particles["rlnDefocusAngle"],
    }
    pd.DataFrame(cols).to_csv(path, index=False)


# --------------------------------------------------------------------------------------------
# reference maps
# --------------------------------------------------------------------------------------------
def lowpass_filter(array, pixel_size: float, resolution: float, edge_width: float | None = None):
    """Low-pass an image (..., n, n) or map (n, n, n) to ``resolution`` Angstrom (numpy, float64).

    The filter is 1 below |k| = 1/resolution - w/2, 0 above 1/resolution + w/2 and a raised
    cosine in between; ``edge_width`` w in 1/A defaults to two Fourier shells, 2 / (n pixel_size).
    The last two axes (images) or all three axes (``array.ndim == 3`` and cubic) are filtered.
    """
    a = np.asarray(array, dtype=np.float64)
    n = a.shape[-1]
    axes = (-3, -2, -1) if a.ndim == 3 and a.shape[0] == a.shape[1] == n else (-2, -1)
    k_c = 1.0 / float(resolution)
    w = 2.0 / (n * pixel_size) if edge_width is None else float(edge_width)
    freqs = [np.fft.fftfreq(a.shape[ax], d=pixel_size) for ax in axes[:-1]]
    freqs.append(np.fft.rfftfreq(n, d=pixel_size))
    grids = np.meshgrid(*freqs, indexing="ij")
    k = np.sqrt(sum(g**2 for g in grids))
    t = np.clip((k - (k_c - w / 2)) / w, 0.0, 1.0)
    filt = 0.5 * (1 + np.cos(np.pi * t))
    ft = np.fft.rfftn(a, axes=axes)
    shape = [a.shape[ax] for ax in axes]
    return np.fft.irfftn(ft * filt, s=shape, axes=axes)


def reference_map(
    model,
    box_size: int,
    voxel_size: float,
    center: bool = True,
    selection: str = "all",
    use_b_factors: bool = False,
    b_factor: float = 0.0,
    lowpass: float | None = None,
) -> np.ndarray:
    """Voxel-averaged potential map (Volts, float32 [z, y, x]) of an atomic model.

    With ``center`` the model's centre of mass (all atoms) is at voxel N // 2, as in
    :func:`simulate_dataset`; otherwise the file's origin is. ``b_factor`` (A^2) blurs every atom;
    ``lowpass`` (Angstrom) applies :func:`lowpass_filter`.
    """
    from cryoensemble.errors import check_positive
    from cryoensemble.projection._maps import render_map

    n = int(box_size)
    if n < 2:
        raise InputError(f"box size must be >= 2 voxels, got {box_size}")
    v = check_positive("voxel size (Angstrom)", voxel_size)
    atoms = prepare_atoms(
        model, structure_center(model) if center else None, selection, use_b_factors, b_factor
    )
    vol = np.asarray(render_map(atoms, n, v), dtype=np.float32)
    if lowpass is not None:
        check_positive("low-pass resolution (Angstrom)", lowpass)
        vol = lowpass_filter(vol, v, lowpass).astype(np.float32)
    return vol
