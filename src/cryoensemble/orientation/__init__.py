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
    rigid_transform,
    rmsd,
    rotation_angle,
    superpose,
    superpose_model,
    superposed_rmsd,
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
    "rigid_transform",
    "superposed_rmsd",
    "superpose_model",
]

from cryoensemble.orientation.grids import (  # noqa: E402
    SO3Grid,
    cell_children,
    cell_rotations,
    geodesic_distance,
    grid_resolution,
    healpix_nest_angles,
    hopf_grid,
    n_rotations,
    nominal_resolution,
)
from cryoensemble.orientation.pose_search import (  # noqa: E402
    PoseSearchConfig,
    PoseSearchResult,
    angular_errors,
    marginal_log_likelihood_matrix,
    pose_search,
    pose_search_arrays,
    prepare_reference,
    score_rotations,
)

__all__ += [
    "PoseSearchConfig",
    "PoseSearchResult",
    "SO3Grid",
    "angular_errors",
    "cell_children",
    "cell_rotations",
    "geodesic_distance",
    "grid_resolution",
    "healpix_nest_angles",
    "hopf_grid",
    "marginal_log_likelihood_matrix",
    "n_rotations",
    "nominal_resolution",
    "pose_search",
    "pose_search_arrays",
    "prepare_reference",
    "score_rotations",
]
