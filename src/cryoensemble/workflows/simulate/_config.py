"""The configuration of a simulated dataset: a validated pydantic model, read from YAML/TOML files
and command-line values. Every check lives here, so library callers get the same messages as the
command line."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cryoensemble.data import bundled
from cryoensemble.io._config import read_mapping, validate_config

__all__ = [
    "DEFAULT_STRUCTURE",
    "NUISANCES",
    "SELECTIONS",
    "SimulateConfig",
    "check_selection",
    "load_config",
]

#: The bundled example: adenylate kinase (open state), all atoms including hydrogens.
DEFAULT_STRUCTURE = bundled("adk_open.pdb")

#: The real-data nuisance options, each off (0 or False) by default.
NUISANCES = (
    "pose_error_deg",
    "shift_error_A",
    "envelope_b_factor",
    "amplitude_spread",
    "ice_fraction",
    "micrograph_noise_spread",
    "normalize",
    "invert_contrast",
)

#: The atom selections every workflow accepts (besides ``chain:A,B``).
SELECTIONS = ("all", "heavy", "calpha", "backbone")


def check_selection(value: str) -> str:
    """``value`` stripped if it is an atom selection (all, heavy, calpha, backbone, chain:A,B).

    Arguments:
        value: the selection as written by the user.

    Raises:
        ValueError: for anything else (pydantic turns it into a field-level message).
    """
    key = value.strip()
    if key in SELECTIONS or (key.startswith("chain:") and key[6:].strip(", ")):
        return key
    raise ValueError("must be all, heavy, calpha, backbone or chain:A,B")


class SimulateConfig(BaseModel):
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
        description="Population weight of each structure (>= 0, normalised to sum 1; a list or "
        "comma-separated). Default: equal weights.",
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
        500.0,
        ge=0,
        description="Largest astigmatism in Angstrom; U = d + a/2, V = d - a/2, angle U(0, 180) "
        "degrees.",
    )
    phase_shift: float = Field(0.0, description="Phase-plate phase shift in degrees (all).")
    ctf_b_factor: float = Field(
        0.0, description="CTF envelope B-factor rlnCtfBfactor in A^2 (all particles)."
    )
    shift_max: float = Field(
        5.0, ge=0, description="Shifts uniform in [-shift_max, shift_max] Angstrom per axis."
    )
    noise: Literal["none", "gaussian", "poisson"] = Field(
        "gaussian",
        description="Noise model: none, gaussian (white, at snr; one sigma for the dataset) or "
        "poisson (shot noise at dose).",
    )
    snr: float | None = Field(
        0.1,
        gt=0,
        description="Signal-to-noise ratio for gaussian noise: signal variance inside a disc of "
        "snr_mask_radius pixels over the noise variance.",
    )
    snr_mask_radius: float | None = Field(
        None,
        gt=0,
        description="Radius in pixels of the disc where the signal variance is measured for the "
        "SNR (default box_size // 2).",
    )
    dose: float | None = Field(
        None, gt=0, description="Electron dose in e/A^2 for poisson noise (required then)."
    )
    pad_factor: float = Field(
        2.0, ge=1, description="Zero-padding factor of the box before the CTF (1 = none)."
    )
    apply_ctf: bool = Field(
        True, description="Apply the CTF (off: images are sigma_e x the projected potential)."
    )
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
        description="Particle STAR file: simulate at its poses, shifts, CTF and optics (box and "
        "pixel size from it); the structure(s) stand for its particles.",
    )
    check_stacks: bool = Field(
        False,
        description="With from_star: also validate the file's image stacks (exist, size, count); "
        "off by default since simulate only uses the STAR file as a template.",
    )
    stack_size: int = Field(10000, ge=1, description="Images per MRC stack file.")
    batch_size: int = Field(
        512, ge=1, description="Particles simulated at once (bounds memory; also the noise pilot)."
    )
    gallery: bool = Field(True, description="Write gallery.png.")
    # -- real-data nuisances (docs/simulate.md, "Real-data nuisances"), each off by default ------
    pose_error_deg: float = Field(
        0.0,
        ge=0,
        description="Pose errors: Gaussian sigma in degrees added to each Euler angle written to "
        "the STAR file (images use the true poses, kept in cryoensembleTrueAngle* columns).",
    )
    shift_error_A: float = Field(
        0.0,
        ge=0,
        description="Shift errors: Gaussian sigma in Angstrom added to each written shift axis "
        "(true shifts in cryoensembleTrueOriginX/YAngst).",
    )
    envelope_b_factor: float = Field(
        0.0,
        ge=0,
        description="Envelope B-factor in A^2 applied to the particle images (FT times "
        "exp(-B k^2 / 4)) but not written to the STAR file.",
    )
    amplitude_spread: float = Field(
        0.0,
        ge=0,
        description="Per-particle amplitude: sigma of a log-normal factor of mean 1 (0.3 = 30 %), "
        "recorded in cryoensembleAmplitude.",
    )
    ice_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction of the noise variance from a CTF-modulated amorphous-ice background "
        "(Parkhurst et al. 2024 spectrum), the rest white; gaussian noise only.",
    )
    micrograph_noise_spread: float = Field(
        0.0,
        ge=0,
        description="Per-micrograph noise level: sigma of a log-normal factor of mean 1 on the "
        "noise standard deviation (writes rlnMicrographName); gaussian noise only.",
    )
    particles_per_micrograph: int = Field(
        50,
        ge=1,
        description="Consecutive particles that share a micrograph (with micrograph_noise_spread; "
        "a from_star file's rlnMicrographName wins).",
    )
    normalize: bool = Field(
        False,
        description="RELION-style normalisation: each image's background (outside "
        "normalize_radius) to mean 0 and standard deviation 1.",
    )
    normalize_radius: float | None = Field(
        None,
        gt=0,
        description="Radius in pixels outside which normalize measures the background (default "
        "box_size // 2 - 1).",
    )
    invert_contrast: bool = Field(
        False, description="Multiply the images by -1 (protein dark, as unprocessed micrographs)."
    )

    @field_validator("selection")
    @classmethod
    def _check_selection(cls, v: str) -> str:
        return check_selection(v)

    @field_validator("weights", mode="before")
    @classmethod
    def _split_weights(cls, v: Any) -> Any:
        """Accept "0.7,0.3" (a file or a repeated command-line option) as well as numbers."""
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list):
            return v
        out: list[Any] = []
        for item in items:
            if not isinstance(item, str):
                out.append(item)
                continue
            for part in item.replace(",", " ").split():
                try:
                    out.append(float(part))
                except ValueError:
                    raise ValueError(f"expected numbers, got {part!r}") from None
        return out

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if any((not math.isfinite(w)) or w < 0 for w in v):
            raise ValueError(f"every weight must be a finite number >= 0, got {v}")
        if sum(v) <= 0:
            raise ValueError(f"weights must not all be zero, got {v}")
        return v

    @model_validator(mode="after")
    def _check_consistency(self) -> SimulateConfig:
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

    # Nuisance checks are field validators (the fields they need come earlier), so that messages
    # name the field and its flag. ``info`` is pydantic's ValidationInfo, a protocol that the
    # runtime type checker of the tests cannot check, hence Any.
    @field_validator("ice_fraction", "micrograph_noise_spread")
    @classmethod
    def _needs_gaussian_noise(cls, v: float, info: Any) -> float:
        noise = info.data.get("noise", "gaussian")
        if v > 0 and noise != "gaussian":
            raise ValueError(
                f"needs noise = 'gaussian' (it splits or scales the gaussian noise level), got "
                f"noise = {noise!r}"
            )
        return v

    @field_validator("normalize")
    @classmethod
    def _needs_noise(cls, v: bool, info: Any) -> bool:
        if v and info.data.get("noise") == "none":
            raise ValueError(
                "needs noise (the background of noise-free images has no standard deviation to "
                "normalise by)"
            )
        return v

    @field_validator("normalize_radius")
    @classmethod
    def _leaves_background(cls, v: float | None, info: Any) -> float | None:
        box = info.data.get("box_size")
        if v is not None and box is not None and v >= box / 2:
            raise ValueError(
                f"{v} px leaves too little background in a {box} px box; must be < box_size / 2"
            )
        return v

    @property
    def normalised_weights(self) -> np.ndarray:
        """Population of each structure, summing to 1 (equal without ``weights``)."""
        w = np.ones(len(self.structures)) if self.weights is None else np.asarray(self.weights)
        return np.asarray(w, dtype=np.float64) / float(np.sum(w))

    @property
    def mask_radius(self) -> float:
        """Radius in pixels of the SNR disc (``snr_mask_radius``, default box_size // 2)."""
        if self.snr_mask_radius is not None:
            return float(self.snr_mask_radius)
        return float(int(self.box_size or 0) // 2)

    @property
    def nuisances(self) -> dict[str, float | bool]:
        """The real-data nuisances that are on: field name -> value."""
        return {k: getattr(self, k) for k in NUISANCES if getattr(self, k)}

    @property
    def background_radius(self) -> float:
        """Radius in pixels outside which ``normalize`` measures the background
        (``normalize_radius``, default box_size // 2 - 1)."""
        if self.normalize_radius is not None:
            return float(self.normalize_radius)
        return float(int(self.box_size or 0) // 2 - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able dictionary (paths as strings)."""
        return self.model_dump(mode="json")


def _read_config_file(path: Path) -> dict[str, Any]:
    """A config file's keys (``-`` read as ``_``), relative paths resolved against its folder."""
    data = {str(k).replace("-", "_"): v for k, v in read_mapping(path).items()}

    def rel(p: Any) -> str:
        return str(p) if Path(str(p)).is_absolute() else str(path.parent / str(p))

    if isinstance(data.get("structures"), str):
        data["structures"] = [data["structures"]]
    if isinstance(data.get("structures"), list):
        data["structures"] = [rel(p) for p in data["structures"]]
    if isinstance(data.get("from_star"), str):
        data["from_star"] = rel(data["from_star"])
    return data


def load_config(
    config_file: str | Path | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    **overrides: Any,
) -> SimulateConfig:
    """A validated :class:`SimulateConfig`: defaults < ``config_file`` < ``overrides``.

    Arguments:
        config_file: YAML (``.yaml``/``.yml``) or TOML (``.toml``) file whose keys are field names
            (``-`` is accepted for ``_``); relative paths (``structures``, ``from_star``) are
            resolved against its folder.
        labels: how messages name the fields (the command line passes its flags).
        overrides: field values; ``None`` values are ignored (unset command-line flags do not
            override the file).

    Raises:
        ConfigError: naming the source and every invalid field.
    """
    data: dict[str, Any] = {}
    source = "command line"
    if config_file is not None:
        data = _read_config_file(Path(config_file))
        source = f"{config_file} (with command-line options)"
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(SimulateConfig, data, source, labels)
