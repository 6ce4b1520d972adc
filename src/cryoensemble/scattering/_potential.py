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

import typing

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.errors import InputError, check_finite
from cryoensemble.scattering._constants import POTENTIAL_PREFACTOR
from cryoensemble.scattering._peng import peng_parameters


class AbstractPotential(eqx.Module):
    """A representation of the electrostatic potential (Volts) that the image model projects.

    The final kinds are :class:`GaussianAtoms` (projected atom by atom, integrated over each
    pixel) and :class:`cryoensemble.projection.MapProjector` (a voxel map prepared for
    Fourier-slice projection); :func:`cryoensemble.imaging.image_one` dispatches on the type.
    Following Equinox's abstract/final pattern, the concrete classes are not subclassed.
    """


@typing.final
class GaussianAtoms(AbstractPotential):
    """Per-atom Gaussian components of the potential: a JAX pytree (final).

    Arguments:
        positions: (n, 3) Angstrom, in the model frame (centred as the caller wants).
        amplitudes: (n, k) V A^3, the integral of each component over space.
        variances: (n, k) A^2, per-axis variance sigma^2 of each component.

    Several structures may be stacked along leading axes (see
    :func:`cryoensemble.inference.stack_structures`).
    """

    positions: Float[Array, "*m n 3"]
    amplitudes: Float[Array, "*m n k"]
    variances: Float[Array, "*m n k"]

    @property
    def n_atoms(self) -> int:
        """The number of atoms n (the second-to-last axis of ``positions``)."""
        return self.positions.shape[-2]

    def with_positions(self, positions: Float[ArrayLike, "n 3"]) -> GaussianAtoms:
        """A copy with the positions (n, 3) Angstrom replaced.

        Arguments:
            positions: (n, 3) new positions in Angstrom.
        """
        return eqx.tree_at(
            lambda g: g.positions, self, jnp.asarray(positions, self.positions.dtype)
        )


def gaussians_from_form_factors(
    positions: Float[ArrayLike, "n 3"],
    a: Float[ArrayLike, "n k"],
    b: Float[ArrayLike, "n k"],
    b_factors: Float[ArrayLike, " n"] | None = None,
    occupancies: Float[ArrayLike, " n"] | None = None,
    dtype=jnp.float32,
) -> GaussianAtoms:
    """Build :class:`GaussianAtoms` from the form-factor Gaussians of each atom.

    Arguments:
        positions: (n, 3) Angstrom.
        a: (n, k) form-factor amplitudes in Angstrom (f(s) = sum a exp(-b s^2)).
        b: (n, k) form-factor widths in Angstrom^2.
        b_factors: (n,) B-factors in Angstrom^2 added to every b; None: none.
        occupancies: (n,) occupancies scaling the amplitudes; None: 1.
        dtype: floating dtype of the arrays.
    """
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
    center: ArrayLike | None = None,
    b_factor: float = 0.0,
    dtype=jnp.float32,
) -> GaussianAtoms:
    """Peng (1996) Gaussian atoms of an :class:`~cryoensemble.structure.AtomicModel`.

    Arguments:
        model: the atomic model (positions in Angstrom).
        use_b_factors: add each atom's B-factor (A^2) from the file to its Gaussians.
        use_occupancies: scale each atom's amplitudes by its occupancy.
        selection: an atom selection ("all", "heavy", "calpha", "backbone", "chain:A"); None
            keeps every atom.
        center: (3,) Angstrom, subtracted from the positions (pass the model's centre of mass to
            centre it); None keeps the coordinates.
        b_factor: a global extra B-factor (A^2) added to every atom (variance + B / (8 pi^2)), on
            top of the file's B-factors when ``use_b_factors``.
        dtype: floating dtype of the arrays.

    Raises:
        InputError: when ``selection`` leaves no atoms.
    """
    if selection is not None:
        model = model.selection(selection)
    if model.n_atoms == 0:
        what = "the model" if selection is None else f"selection {selection!r}"
        raise InputError(f"{what} leaves no atoms")
    a, b = peng_parameters(model.atomic_numbers)
    pos = np.asarray(model.positions, dtype=np.float64)
    if center is not None:
        pos = pos - np.asarray(center, dtype=np.float64)
    b_factors = np.full(model.n_atoms, check_finite("B-factor (A^2)", b_factor))
    if use_b_factors:
        b_factors = b_factors + np.asarray(model.b_factors, dtype=np.float64)
    return gaussians_from_form_factors(
        pos,
        a,
        b,
        b_factors=b_factors,
        occupancies=model.occupancies if use_occupancies else None,
        dtype=dtype,
    )
