"""Rotations and poses: RELION Euler angles, quaternions, random rotations, rigid superposition
(Kabsch, Horn, DRaM EnP/OnP) and SO(3) grids.

Everything here is geometry below the physics: every other package may use it, it uses none.
See ``docs/conventions.md`` (Euler angles) and ``docs/orientation.md`` (rotation fits, grids).
"""

from cryoensemble.pose._euler import (
    euler_to_matrix as euler_to_matrix,
)
from cryoensemble.pose._euler import (
    matrix_to_euler as matrix_to_euler,
)
from cryoensemble.pose._euler import (
    matrix_to_quaternion as matrix_to_quaternion,
)
from cryoensemble.pose._euler import (
    quaternion_to_matrix as quaternion_to_matrix,
)
from cryoensemble.pose._euler import (
    random_euler_angles as random_euler_angles,
)
from cryoensemble.pose._euler import (
    random_quaternions as random_quaternions,
)
from cryoensemble.pose._euler import (
    random_rotations as random_rotations,
)
from cryoensemble.pose._grids import (
    SO3Grid as SO3Grid,
)
from cryoensemble.pose._grids import (
    cell_children as cell_children,
)
from cryoensemble.pose._grids import (
    cell_rotations as cell_rotations,
)
from cryoensemble.pose._grids import (
    geodesic_distance as geodesic_distance,
)
from cryoensemble.pose._grids import (
    grid_resolution as grid_resolution,
)
from cryoensemble.pose._grids import (
    healpix_nest_angles as healpix_nest_angles,
)
from cryoensemble.pose._grids import (
    hopf_grid as hopf_grid,
)
from cryoensemble.pose._grids import (
    n_rotations as n_rotations,
)
from cryoensemble.pose._grids import (
    nominal_resolution as nominal_resolution,
)
from cryoensemble.pose._superpose import (
    dram_enp as dram_enp,
)
from cryoensemble.pose._superpose import (
    dram_enp_batched as dram_enp_batched,
)
from cryoensemble.pose._superpose import (
    dram_enp_matrix as dram_enp_matrix,
)
from cryoensemble.pose._superpose import (
    dram_enp_matrix_batched as dram_enp_matrix_batched,
)
from cryoensemble.pose._superpose import (
    dram_onp as dram_onp,
)
from cryoensemble.pose._superpose import (
    dram_onp_batched as dram_onp_batched,
)
from cryoensemble.pose._superpose import (
    dram_onp_matrix as dram_onp_matrix,
)
from cryoensemble.pose._superpose import (
    dram_onp_matrix_batched as dram_onp_matrix_batched,
)
from cryoensemble.pose._superpose import (
    horn as horn,
)
from cryoensemble.pose._superpose import (
    horn_batched as horn_batched,
)
from cryoensemble.pose._superpose import (
    kabsch as kabsch,
)
from cryoensemble.pose._superpose import (
    kabsch_batched as kabsch_batched,
)
from cryoensemble.pose._superpose import (
    nearest_rotation_quaternion as nearest_rotation_quaternion,
)
from cryoensemble.pose._superpose import (
    nearest_rotation_svd as nearest_rotation_svd,
)
from cryoensemble.pose._superpose import (
    rigid_transform as rigid_transform,
)
from cryoensemble.pose._superpose import (
    rmsd as rmsd,
)
from cryoensemble.pose._superpose import (
    rotation_angle as rotation_angle,
)
from cryoensemble.pose._superpose import (
    superpose as superpose,
)
from cryoensemble.pose._superpose import (
    superpose_model as superpose_model,
)
from cryoensemble.pose._superpose import (
    superposed_rmsd as superposed_rmsd,
)
