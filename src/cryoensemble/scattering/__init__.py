"""Electron scattering: Peng (1996) form factors, electron-optical constants, and the potential
as Gaussian atoms."""

from cryoensemble.scattering._constants import POTENTIAL_PREFACTOR as POTENTIAL_PREFACTOR
from cryoensemble.scattering._constants import electron_wavelength as electron_wavelength
from cryoensemble.scattering._constants import interaction_constant as interaction_constant
from cryoensemble.scattering._peng import MOTT_BETHE_CONSTANT as MOTT_BETHE_CONSTANT
from cryoensemble.scattering._peng import PENG_ELEMENTS as PENG_ELEMENTS
from cryoensemble.scattering._peng import PENG_FIT_RANGES as PENG_FIT_RANGES
from cryoensemble.scattering._peng import electron_scattering_factor as electron_scattering_factor
from cryoensemble.scattering._peng import peng_parameters as peng_parameters
from cryoensemble.scattering._potential import AbstractPotential as AbstractPotential
from cryoensemble.scattering._potential import GaussianAtoms as GaussianAtoms
from cryoensemble.scattering._potential import gaussian_atoms as gaussian_atoms
from cryoensemble.scattering._potential import (
    gaussians_from_form_factors as gaussians_from_form_factors,
)
