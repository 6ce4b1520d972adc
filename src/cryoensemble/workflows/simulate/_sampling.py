"""Particle parameters of a simulated dataset: drawn from the configuration's seed, or read from a
particle STAR file (``from_star``).

Sampling (all from ``numpy.random.default_rng(seed)``, in this order, one array of n each):
structure index (``rng.choice`` with the normalised weights); rot ~ U(-180, 180), tilt =
arccos(U(-1, 1)), psi ~ U(-180, 180) degrees (uniform on SO(3)); shift x, shift y ~
U(-shift_max, shift_max) Angstrom per axis (a square); mean defocus d ~ U(defocus_min, defocus_max),
astigmatism a ~ U(astigmatism_min, astigmatism_max), rlnDefocusU = d + a/2, rlnDefocusV = d - a/2,
rlnDefocusAngle ~ U(0, 180) degrees. With ``from_star`` only the structure index is drawn (the
file's own ``cryoensemble*`` columns are dropped). Then :func:`resolve_config` adds the
per-particle nuisances (``_nuisances.py``, their own random streams) and, for ``apply_ctf``
False, the identity CTF columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryoensemble.errors import ConfigError, InputError
from cryoensemble.io import ParticleDataset, read_particles
from cryoensemble.io._config import validate_config
from cryoensemble.workflows.simulate._config import SimulateConfig
from cryoensemble.workflows.simulate._nuisances import add_particle_nuisances, identity_ctf

__all__ = ["draw_particles", "resolve_config", "stack_name"]

_DEFAULT_BOX = 128
_DEFAULT_PIXEL = 1.2


def stack_name(index: int) -> str:
    """File name of the ``index``-th (0-based) stack: ``particles_00000.mrcs``.

    Arguments:
        index: the stack's 0-based index.
    """
    return f"particles_{index:05d}.mrcs"


def _image_names(n: int, stack_size: int) -> list[str]:
    return [f"{i % stack_size + 1:06d}@{stack_name(i // stack_size)}" for i in range(n)]


def _structure_labels(config: SimulateConfig) -> list[str]:
    return ["_".join(Path(p).name.split()) for p in config.structures]


def _optics_table(config: SimulateConfig) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnVoltage": [float(config.voltage)],
            "rlnSphericalAberration": [float(config.spherical_aberration)],
            "rlnAmplitudeContrast": [float(config.amplitude_contrast)],
            "rlnImagePixelSize": [float(config.pixel_size or _DEFAULT_PIXEL)],
            "rlnImageSize": [int(config.box_size or _DEFAULT_BOX)],
            "rlnImageDimensionality": [2],
        }
    )


def draw_particles(config: SimulateConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The optics and particle tables of a new dataset, drawn from ``config.seed``.

    Arguments:
        config: a resolved configuration (box and pixel size set; see :func:`resolve_config`).

    Returns:
        ``(optics, particles)``: RELION's columns (float64; angles in degrees, shifts and defocus
        in Angstrom) and the ground-truth columns ``cryoensembleStructureIndex`` and
        ``cryoensembleStructureFile``; image names point at ``particles_NNNNN.mrcs`` stacks of
        ``stack_size`` images.
    """
    rng = np.random.default_rng(config.seed)
    n = config.n_particles
    structure = rng.choice(len(config.structures), size=n, p=config.normalised_weights)
    rot = rng.uniform(-180.0, 180.0, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(-180.0, 180.0, n)
    sx = rng.uniform(-config.shift_max, config.shift_max, n)
    sy = rng.uniform(-config.shift_max, config.shift_max, n)
    defocus = rng.uniform(config.defocus_min, config.defocus_max, n)
    astig = rng.uniform(config.astigmatism_min, config.astigmatism_max, n)
    angle = rng.uniform(0.0, 180.0, n)
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
    return _optics_table(config), particles


def _particles_from_star(config: SimulateConfig) -> tuple[pd.DataFrame, pd.DataFrame, float, int]:
    """Optics and particle tables of ``config.from_star`` with our image names and ground truth,
    and its pixel size (Angstrom) and box size (pixels)."""
    src = config.from_star
    table = read_particles(src, require_poses=True)
    optics = table.optics.copy()
    used = np.unique(table.optics_rows())
    px = optics["rlnImagePixelSize"].to_numpy(np.float64)[used]
    sizes = optics["rlnImageSize"].to_numpy(np.int64)[used]
    if np.ptp(px) > 1e-6 * px.max() or len(np.unique(sizes)) > 1:
        raise InputError(
            f"{src}: optics groups differ in rlnImagePixelSize or rlnImageSize; simulation needs "
            "a single pixel size and box size"
        )
    if config.check_stacks:
        _check_stacks(src)
    # a previous simulation's ground truth is not this one's
    ours = [c for c in table.particles.columns if str(c).startswith("cryoensemble")]
    particles = table.particles.drop(columns=ours)
    n = len(particles)
    rng = np.random.default_rng(config.seed)
    structure = rng.choice(len(config.structures), size=n, p=config.normalised_weights)
    labels = _structure_labels(config)
    particles["cryoensembleSourceImageName"] = particles["rlnImageName"].astype(str)
    particles["rlnImageName"] = _image_names(n, config.stack_size)
    particles["cryoensembleStructureIndex"] = structure.astype(np.int64)
    particles["cryoensembleStructureFile"] = [labels[i] for i in structure]
    return optics, particles, float(px[0]), int(sizes[0])


def _check_stacks(src: Path) -> None:
    """Validate the image stacks of ``src`` (exist, box size, image count); the message says that
    simulate does not need them."""
    try:
        ParticleDataset(src, require_poses=True)
    except InputError as err:
        raise InputError(
            f"{err}; simulate --from-star only uses the STAR file as a template: leave out "
            "--check-stacks (or pass --no-check-stacks) to simulate without its stacks"
        ) from None


def _check_star_sizes(config: SimulateConfig, box: int, px: float) -> None:
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


def resolve_config(
    config: SimulateConfig,
) -> tuple[SimulateConfig, pd.DataFrame, pd.DataFrame]:
    """Fill the defaults that depend on data and draw (or read) the particles.

    With ``from_star`` the box size, pixel size, number of particles and the optics of the file
    (first optics group's voltage, Cs and Q0 as the config's; each particle keeps its own group)
    are taken from it; given box/pixel sizes must agree with the file. Paths become absolute.
    The per-particle nuisances (pose errors, amplitudes, micrograph noise levels) are drawn into
    the particle table; without CTF its CTF columns describe the identity CTF.

    Arguments:
        config: the user's configuration.

    Returns:
        ``(resolved_config, optics, particles)``; the resolved config reproduces the dataset.

    Raises:
        ConfigError: box or pixel size disagreeing with the ``from_star`` file.
        InputError: a bad ``from_star`` file (one line naming the file).
    """
    config = config.model_copy(
        update={
            "structures": [Path(p).absolute() for p in config.structures],
            "from_star": None if config.from_star is None else Path(config.from_star).absolute(),
        }
    )
    if config.from_star is None:
        resolved = config.model_copy(
            update={
                "box_size": config.box_size or _DEFAULT_BOX,
                "pixel_size": config.pixel_size or _DEFAULT_PIXEL,
            }
        )
        return resolved, *_with_nuisances(resolved, *draw_particles(resolved))
    optics, particles, px, box = _particles_from_star(config)
    _check_star_sizes(config, box, px)
    first = optics.iloc[0]
    update = {
        "box_size": box,
        "pixel_size": px,
        "n_particles": len(particles),
        "voltage": float(first["rlnVoltage"]),
        "spherical_aberration": float(first["rlnSphericalAberration"]),
        "amplitude_contrast": float(first["rlnAmplitudeContrast"]),
    }
    data = {**config.model_dump(), **update}
    resolved = validate_config(SimulateConfig, data, str(config.from_star))
    return resolved, *_with_nuisances(resolved, optics, particles)


def _with_nuisances(
    config: SimulateConfig, optics: pd.DataFrame, particles: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables with the per-particle nuisances and, without CTF, an identity CTF."""
    particles = add_particle_nuisances(config, particles)
    if not config.apply_ctf:
        optics, particles = identity_ctf(optics, particles)
    return optics, particles
