"""Reference maps: an atomic model as a 3-D map of voxel-averaged potential."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from cryoensemble.errors import InputError, check_positive
from cryoensemble.ndimage import lowpass as lowpass_filter
from cryoensemble.projection import render_map
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import AtomicModel

__all__ = ["reference_map"]


def reference_map(
    model: AtomicModel,
    box_size: int,
    voxel_size: float,
    center: bool = True,
    selection: str = "all",
    use_b_factors: bool = False,
    b_factor: float = 0.0,
    lowpass: float | None = None,
) -> Float[np.ndarray, "N N N"]:
    """Voxel-averaged potential map (Volts, float32 [z, y, x]) of an atomic model.

    The model is placed as ``cryoensemble simulate`` places it.

    Arguments:
        model: the atomic model (Angstrom).
        box_size: map side N in voxels (>= 2).
        voxel_size: Angstrom per voxel.
        center: put the model's centre of mass (all atoms) at voxel N // 2; otherwise the file's
            origin is there.
        selection: atoms rendered (all, heavy, calpha, backbone, chain:A,B).
        use_b_factors: blur each atom by its B-factor from the file.
        b_factor: global B-factor (A^2) added to every atom.
        lowpass: resolution (Angstrom) of a raised-cosine low-pass
            (:func:`cryoensemble.ndimage.lowpass`), or None.
    """
    n = int(box_size)
    if n < 2:
        raise InputError(f"box size must be >= 2 voxels, got {box_size}")
    v = check_positive("voxel size (Angstrom)", voxel_size)
    atoms = gaussian_atoms(
        model,
        selection=selection,
        center=model.center_of_mass() if center else None,
        use_b_factors=use_b_factors,
        b_factor=b_factor,
    )
    vol = jnp.asarray(render_map(atoms, n, v), jnp.float32)
    if lowpass is not None:
        vol = lowpass_filter(
            vol, v, check_positive("low-pass resolution (Angstrom)", lowpass), ndim=3
        )
    return np.asarray(vol, dtype=np.float32)
