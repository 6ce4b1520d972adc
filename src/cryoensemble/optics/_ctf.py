"""The contrast transfer function in RELION's convention.

    lambda = 12.2643247 / sqrt(V (1 + 0.978466e-6 V))          (Angstrom, V in volts)
    dz(phi) = U cos^2(phi - angle) + V sin^2(phi - angle)       (Angstrom, positive = underfocus)
    gamma(k) = -pi lambda dz k^2 + pi/2 Cs lambda^3 k^4 - phase_shift - atan(Q0 / sqrt(1 - Q0^2))
    CTF(k) = -sin(gamma(k)) exp(-B k^2 / 4) scale

phi = atan2(ky, kx) is measured from the +x axis (image columns), k in 1/Angstrom, Cs in mm
(x 1e7 to Angstrom), phase shift and the astigmatism angle in degrees. CTF(0) = +Q0: the projected
potential keeps its positive sign at low resolution (bright protein, as in RELION's particles).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.scattering import electron_wavelength


class CTFParams(eqx.Module):
    """Microscope and per-particle CTF parameters; every field is an array (batch or scalar).

    Units: defocus_u/v in Angstrom (positive = underfocus), defocus_angle and phase_shift in
    degrees, spherical_aberration in mm, voltage in kV, b_factor in A^2, amplitude_contrast and
    scale dimensionless.
    """

    defocus_u: Float[Array, "*b"]
    defocus_v: Float[Array, "*b"]
    defocus_angle: Float[Array, "*b"]
    voltage: Float[Array, "*b"]
    spherical_aberration: Float[Array, "*b"]
    amplitude_contrast: Float[Array, "*b"]
    phase_shift: Float[Array, "*b"]
    b_factor: Float[Array, "*b"]
    scale: Float[Array, "*b"]

    def __init__(
        self,
        defocus_u=10000.0,
        defocus_v=None,
        defocus_angle=0.0,
        voltage=300.0,
        spherical_aberration=2.7,
        amplitude_contrast=0.1,
        phase_shift=0.0,
        b_factor=0.0,
        scale=1.0,
        dtype=jnp.float32,
    ):
        f = lambda x: jnp.asarray(x, dtype=dtype)
        self.defocus_u = f(defocus_u)
        self.defocus_v = f(defocus_u if defocus_v is None else defocus_v)
        self.defocus_angle = f(defocus_angle)
        self.voltage = f(voltage)
        self.spherical_aberration = f(spherical_aberration)
        self.amplitude_contrast = f(amplitude_contrast)
        self.phase_shift = f(phase_shift)
        self.b_factor = f(b_factor)
        self.scale = f(scale)

    def __check_init__(self):
        """Reject impossible concrete values (traced values inside jit/vmap are not checked)."""
        for name in ("defocus_u", "defocus_v", "defocus_angle", "phase_shift", "b_factor", "scale"):
            _check_concrete(name, getattr(self, name), lambda x: np.isfinite(x), "finite")
        _check_concrete("voltage (kV)", self.voltage, lambda x: np.isfinite(x) & (x > 0), "> 0")
        _check_concrete(
            "spherical aberration (mm)", self.spherical_aberration, np.isfinite, "finite"
        )
        q0 = self.amplitude_contrast
        _check_concrete("amplitude contrast", q0, lambda x: (x >= 0) & (x < 1), "in [0, 1)")


def _check_concrete(name: str, value, ok, what: str) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    bad = ~np.asarray(ok(arr), dtype=bool)
    if bad.any():
        first = arr.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]
        where = (
            f" (first bad value {first!r} at index {int(np.flatnonzero(bad.reshape(-1))[0])})"
            if arr.ndim
            else f" (got {first!r})"
        )
        raise InputError(f"CTF parameter {name} must be {what}{where}")


def ctf_phase(
    params: CTFParams, kx: Float[ArrayLike, "..."], ky: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """RELION's gamma(k) in radians (see the module docstring).

    Arguments:
        params: the CTF parameters (fields broadcast against ``kx``).
        kx: spatial frequencies along x (image columns) in 1/Angstrom.
        ky: spatial frequencies along y (image rows) in 1/Angstrom, broadcastable with ``kx``.
    """
    lam = electron_wavelength(params.voltage)
    k2 = kx**2 + ky**2
    # dz(phi) k^2 without atan2: with a = angle, cos^2(phi - a) = (1 + cos(2 phi - 2 a)) / 2 and
    # k^2 cos(2 phi) = kx^2 - ky^2, k^2 sin(2 phi) = 2 kx ky.
    two_a = jnp.deg2rad(2.0 * params.defocus_angle)
    mean = 0.5 * (params.defocus_u + params.defocus_v)
    half_diff = 0.5 * (params.defocus_u - params.defocus_v)
    dz_k2 = mean * k2 + half_diff * (
        (kx**2 - ky**2) * jnp.cos(two_a) + 2.0 * kx * ky * jnp.sin(two_a)
    )
    cs = params.spherical_aberration * 1e7
    q0 = params.amplitude_contrast
    return (
        -jnp.pi * lam * dz_k2
        + 0.5 * jnp.pi * cs * lam**3 * k2**2
        - jnp.deg2rad(params.phase_shift)
        - jnp.arctan(q0 / jnp.sqrt(1.0 - q0**2))
    )


def ctf(
    params: CTFParams, kx: Float[ArrayLike, "..."], ky: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """RELION's CTF, -sin(gamma) exp(-B k^2/4) scale (dimensionless).

    Arguments:
        params: the CTF parameters (fields broadcast against ``kx``).
        kx: spatial frequencies along x (image columns) in 1/Angstrom.
        ky: spatial frequencies along y (image rows) in 1/Angstrom, broadcastable with ``kx``.
    """
    k2 = kx**2 + ky**2
    return -jnp.sin(ctf_phase(params, kx, ky)) * jnp.exp(-params.b_factor * k2 / 4) * params.scale
