"""Atoms as sums of isotropic 3-D Gaussians (the electrostatic potential, in Volts).

An electron form factor f(s) = sum_i a_i exp(-b_i s^2) (s = sin(theta)/lambda, Peng 1996) is, by the
Mott-Bethe relation and an inverse Fourier transform, the real-space potential

    V(r) = (h^2 / (2 pi m0 e)) sum_i a_i (4 pi / b_i)^(3/2) exp(-4 pi^2 r^2 / b_i)
         = sum_i A_i (2 pi sigma_i^2)^(-3/2) exp(-r^2 / (2 sigma_i^2)),

with A_i = 47.878 a_i (V A^3, the integral of the component over space) and
sigma_i^2 = b_i / (8 pi^2) (A^2). A B-factor B adds B / (8 pi^2) to every sigma_i^2 (the
Debye-Waller factor exp(-B s^2)); occupancy scales A_i.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from cryoensemble.scattering._constants import POTENTIAL_PREFACTOR


class GaussianAtoms(eqx.Module):
    """Per-atom Gaussian components of the potential: a JAX pytree.

    positions: (n, 3) Angstrom, in the model frame (centred as the caller wants).
    amplitudes: (n, k) V A^3, the integral of each component over space.
    variances: (n, k) A^2, per-axis variance sigma^2 of each component.
    """

    positions: Float[Array, "n 3"]
    amplitudes: Float[Array, "n k"]
    variances: Float[Array, "n k"]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[0]

    def with_positions(self, positions: Float[Array, "n 3"]) -> GaussianAtoms:
        return eqx.tree_at(
            lambda g: g.positions, self, jnp.asarray(positions, self.positions.dtype)
        )


def gaussians_from_form_factors(
    positions, a, b, b_factors=None, occupancies=None, dtype=jnp.float32
) -> GaussianAtoms:
    """Build :class:`GaussianAtoms` from form-factor parameters a (A) and b (A^2), shape (n, k)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if b_factors is not None:
        b = b + np.asarray(b_factors, dtype=np.float64)[:, None]
    amp = POTENTIAL_PREFACTOR * a
    if occupancies is not None:
        amp = amp * np.asarray(occupancies, dtype=np.float64)[:, None]
    return GaussianAtoms(
        positions=jnp.asarray(np.asarray(positions), dtype=dtype),
        amplitudes=jnp.asarray(amp, dtype=dtype),
        variances=jnp.asarray(b / (8 * np.pi**2), dtype=dtype),
    )


def gaussian_atoms(
    model,
    *,
    use_b_factors: bool = False,
    use_occupancies: bool = False,
    selection: str | None = None,
    center: np.ndarray | None = None,
    dtype=jnp.float32,
) -> GaussianAtoms:
    """Peng (1996) Gaussian atoms of an :class:`~cryoensemble.structure.AtomicModel`.

    ``selection`` is an atom selection ("all", "heavy", "calpha", "chain:A"); ``center`` (3,) in
    Angstrom is subtracted from the positions (pass the model's centre of mass to centre it).
    """
    from cryoensemble.scattering._peng import peng_parameters

    if selection is not None:
        model = model.selection(selection)
    a, b = peng_parameters(model.atomic_numbers)
    pos = np.asarray(model.positions, dtype=np.float64)
    if center is not None:
        pos = pos - np.asarray(center, dtype=np.float64)
    return gaussians_from_form_factors(
        pos,
        a,
        b,
        b_factors=model.b_factors if use_b_factors else None,
        occupancies=model.occupancies if use_occupancies else None,
        dtype=dtype,
    )
