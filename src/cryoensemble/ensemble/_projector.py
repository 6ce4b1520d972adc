"""The interface of prior projectors: pull each walker towards target coordinates while keeping it
physical (a force field, an elastic network, a user energy).

A projector works on one walker at a time, on the host side of the optimisation loop. Positions are
numpy arrays in Angstrom for **all** atoms of the walker's model (hydrogens included), in the
frame of the particles. The target covers only the atoms selected for the likelihood
(``selection`` indexes into the full model). Each walker carries its own state (e.g. its molecular
dynamics trajectory: velocities, random stream), which must survive a checkpoint exactly so that a
resumed run continues identically.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np


class PriorProjector(abc.ABC):
    """Abstract base of the prior projectors (pure-JAX Langevin, OpenMM molecular dynamics)."""

    @abc.abstractmethod
    def init_state(self, positions: np.ndarray, walker: int, seed: int) -> Any:
        """The initial state of walker ``walker`` at ``positions`` (n_atoms, 3) A, from ``seed``."""

    @abc.abstractmethod
    def project(
        self, state: Any, target: np.ndarray, selection: np.ndarray
    ) -> tuple[Any, np.ndarray]:
        """Move the walker towards ``target`` (len(selection), 3) A on the selected atoms.

        Returns the new state and the new positions of all atoms (n_atoms, 3) in Angstrom.
        Deterministic given the state (all randomness comes from the state's stream).
        """

    @abc.abstractmethod
    def state_dict(self, state: Any) -> dict[str, np.ndarray]:
        """The state as named numpy arrays (for checkpoints)."""

    @abc.abstractmethod
    def load_state(self, arrays: dict[str, np.ndarray]) -> Any:
        """Inverse of :meth:`state_dict`."""

    def positions(self, state: Any) -> np.ndarray:
        """Current positions (n_atoms, 3) A of the walker in ``state``."""
        return np.asarray(self.state_dict(state)["positions"])
