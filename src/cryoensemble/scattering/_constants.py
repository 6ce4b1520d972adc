"""Relativistic electron wavelength and interaction constant.

Units: voltage in kV, wavelength in Angstrom, interaction constant in rad / (V Angstrom).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

# Physical constants (CODATA 2018).
_H = 6.62607015e-34  # J s
_M0 = 9.1093837015e-31  # kg
_E = 1.602176634e-19  # C
_C = 299792458.0  # m / s

#: h^2 / (2 pi m0 e) in V Angstrom^2: turns an electron form factor (Angstrom) into a potential.
POTENTIAL_PREFACTOR = _H**2 / (2 * math.pi * _M0 * _E) * 1e20  # = 47.878 V A^2


def electron_wavelength(voltage_kv: Real[ArrayLike, "*v"]) -> Float[Array, "*v"]:
    """Relativistic electron wavelength in Angstrom.

    lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2))); RELION's form is
    12.2643247 / sqrt(V (1 + 0.978466e-6 V)) with V in volts, identical to 6 digits.

    Arguments:
        voltage_kv: accelerating voltage in kV (any shape).
    """
    v = jnp.asarray(voltage_kv) * 1e3
    return 12.2643247 / jnp.sqrt(v * (1.0 + 0.978466e-6 * v))


def interaction_constant(voltage_kv: Real[ArrayLike, "*v"]) -> Float[Array, "*v"]:
    """Interaction constant sigma_e = 2 pi m e lambda / h^2 in rad / (V Angstrom).

    With the relativistic mass m = gamma m0. About 6.5e-4 rad/(V A) at 300 kV.

    Arguments:
        voltage_kv: accelerating voltage in kV (any shape).
    """
    v = jnp.asarray(voltage_kv) * 1e3
    gamma = 1.0 + v * (_E / (_M0 * _C**2))
    # 2 pi m0 e / h^2 in 1/(V m^2), times 1e-20 for lambda and the result in Angstrom.
    prefactor = 2 * math.pi * _M0 * _E / _H**2 * 1e-20
    return prefactor * gamma * electron_wavelength(voltage_kv)
