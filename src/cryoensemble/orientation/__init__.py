"""Orientation: closed-form rotation solvers (DRaM EnP/OnP, Kabsch, Horn) and superposition.

See ``docs/orientation.md`` for the formulas, conventions and benchmark figures.
"""

from cryoensemble.orientation.rotation_fit import (
    dram_enp,
    dram_enp_batched,
    dram_enp_matrix,
    dram_enp_matrix_batched,
    dram_onp,
    dram_onp_batched,
    dram_onp_matrix,
    dram_onp_matrix_batched,
    horn,
    horn_batched,
    kabsch,
    kabsch_batched,
    nearest_rotation_quaternion,
    nearest_rotation_svd,
    quaternion_to_matrix,
    rmsd,
    rotation_angle,
    superpose,
)

__all__ = [
    "dram_enp",
    "dram_enp_batched",
    "dram_enp_matrix",
    "dram_enp_matrix_batched",
    "dram_onp",
    "dram_onp_batched",
    "dram_onp_matrix",
    "dram_onp_matrix_batched",
    "horn",
    "horn_batched",
    "kabsch",
    "kabsch_batched",
    "nearest_rotation_quaternion",
    "nearest_rotation_svd",
    "quaternion_to_matrix",
    "rmsd",
    "rotation_angle",
    "superpose",
]
