"""Electron scattering: Peng (1996) form factors, electron-optical constants, Gaussian atoms."""

from cryoensemble.scattering._constants import (
    POTENTIAL_PREFACTOR,
    electron_wavelength,
    interaction_constant,
)
from cryoensemble.scattering._peng import (
    MOTT_BETHE_CONSTANT,
    PENG_ELEMENTS,
    PENG_FIT_RANGES,
    electron_scattering_factor,
    peng_parameters,
)
from cryoensemble.scattering._potential import (
    GaussianAtoms,
    gaussian_atoms,
    gaussians_from_form_factors,
)

__all__ = [
    "GaussianAtoms",
    "POTENTIAL_PREFACTOR",
    "electron_wavelength",
    "gaussian_atoms",
    "gaussians_from_form_factors",
    "interaction_constant",
    "MOTT_BETHE_CONSTANT",
    "PENG_ELEMENTS",
    "PENG_FIT_RANGES",
    "electron_scattering_factor",
    "peng_parameters",
]
