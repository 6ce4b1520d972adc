"""Particle poses in RELION's convention: Euler angles, quaternions, matrices, shifts."""

from .euler import (
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_to_matrix,
    random_euler_angles,
    random_quaternions,
    random_rotations,
)

__all__ = [
    "euler_to_matrix",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "random_euler_angles",
    "random_quaternions",
    "random_rotations",
]
