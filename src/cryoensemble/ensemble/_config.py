"""Kernel-level settings of the ensemble priors and of the inner optimisation step.

Frozen dataclasses (hashable, so they can be static arguments of jitted functions). Each field's
admissible range is stated once, as ``annotated_types`` metadata: :func:`_check_ranges` enforces it
when a library user builds a configuration, and the workflow's pydantic ``OptimizeConfig`` (which
uses these classes as the types of its nested sections) reads the same metadata to report
field-level errors for configuration files.

Units: Angstrom (A) for lengths, kJ/mol for energies, kJ/mol/A^2 for spring constants, K for
temperatures.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Annotated, Any, Literal

import annotated_types as at

from cryoensemble.errors import ConfigError

__all__ = [
    "KB_KJ_PER_MOL_K",
    "ElasticNetworkConfig",
    "InnerStepConfig",
    "LangevinConfig",
]

#: Boltzmann constant in kJ/mol/K.
KB_KJ_PER_MOL_K = 0.0083144626

# pydantic reads this when a dataclass below is a field of a pydantic model: unknown keys in a
# configuration file are errors (a plain dict, so that this module does not import pydantic)
_FORBID_EXTRA = {"extra": "forbid"}

_BOUNDS = {
    at.Gt: (lambda v, b: v > b, "greater than"),
    at.Ge: (lambda v, b: v >= b, "greater than or equal to"),
    at.Lt: (lambda v, b: v < b, "less than"),
    at.Le: (lambda v, b: v <= b, "less than or equal to"),
}


def _check_ranges(obj: Any) -> None:
    """Raise :class:`ConfigError` naming the first field of ``obj`` outside its stated range."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not math.isfinite(value):
            raise ConfigError(f"{type(obj).__name__}.{field.name} must be finite (got {value})")
        for meta in getattr(hints[field.name], "__metadata__", ()):
            for kind, (ok, words) in _BOUNDS.items():
                if isinstance(meta, kind):
                    bound = next(iter(dataclasses.astuple(meta)))
                    if not ok(value, bound):
                        raise ConfigError(
                            f"{type(obj).__name__}.{field.name} must be {words} {bound} "
                            f"(got {value})"
                        )


@dataclasses.dataclass(frozen=True)
class ElasticNetworkConfig:
    """The built-in prior: an elastic network over the selected atoms, built from a reference
    structure (each walker's own start unless ``reference`` says otherwise).

    Energy (kJ/mol), d_ij the current and d0_ij the reference distance (A)::

        U = sum_local 0.5 k_local (d_ij - d0_ij)^2                         (local springs)
          - sum_contacts depth exp(-(d_ij - d0_ij)^2 / (2 width^2))        (breakable contacts)
          + sum_other 0.5 k_repulsion max(0, repulsion_distance - d_ij)^2  (soft-core repulsion)

    Local springs join atoms closer than ``local_cutoff`` in the reference whose residues are at
    most ``sequence_separation`` apart in the same chain: they keep bonds, angles and the local
    fold. Contacts are all other pairs closer than ``contact_cutoff``: a Gaussian well that
    saturates (the force vanishes beyond a few ``contact_width``), so domains can separate or
    close. The repulsion acts between atoms of neither set, from a neighbour list rebuilt at every
    projection.

    Arguments:
        reference: build the network from each walker's starting model (``"start"``) or from the
            reference model of the run (``"reference"``).
        local_cutoff: local springs, largest reference distance, A (0, 30].
        sequence_separation: local springs, largest residue separation in a chain [0, 50].
        k_local: spring constant of the local springs, kJ/mol/A^2 (0, 1e4].
        contact_cutoff: breakable contacts, largest reference distance, A [0, 30].
        contact_depth: depth of each contact well, kJ/mol [0, 1e3] (0: no contacts).
        contact_width: width (standard deviation) of a contact well, A (0, 10].
        repulsion_distance: soft-core repulsion below this distance, A [0, 10] (0: off).
        k_repulsion: repulsion spring constant, kJ/mol/A^2 [0, 1e4].
    """

    __pydantic_config__ = _FORBID_EXTRA

    reference: Literal["start", "reference"] = "start"
    local_cutoff: Annotated[float, at.Gt(0), at.Le(30)] = 7.0
    sequence_separation: Annotated[int, at.Ge(0), at.Le(50)] = 2
    k_local: Annotated[float, at.Gt(0), at.Le(1e4)] = 10.0
    contact_cutoff: Annotated[float, at.Ge(0), at.Le(30)] = 7.0
    contact_depth: Annotated[float, at.Ge(0), at.Le(1e3)] = 2.0
    contact_width: Annotated[float, at.Gt(0), at.Le(10)] = 1.0
    repulsion_distance: Annotated[float, at.Ge(0), at.Le(10)] = 3.0
    k_repulsion: Annotated[float, at.Ge(0), at.Le(1e4)] = 10.0

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclasses.dataclass(frozen=True)
class LangevinConfig:
    """Steered overdamped Langevin dynamics (pure JAX) on the selected atoms::

        x <- x - h (grad U(x) + k (x - target)) + sqrt(2 h kT) xi,   xi ~ N(0, I)

    h is the time step times the mobility (A^2 per kJ/mol); stable for h * (stiffest spring
    sum + k) < 1. Unselected atoms (hydrogens) follow their residue's selected atoms rigidly.

    Arguments:
        n_steps: Langevin steps per projection [1, 1e5].
        step: h, time step x mobility, A^2 per kJ/mol (0, 1]; the thermal move per step is
            sqrt(2 h kT) A.
        k_target: k, steering spring to the target, kJ/mol/A^2 [0, 1e5].
        temperature: temperature in K [0, 2000] (0: gradient descent).
        energy: the built-in energy, the elastic network (``"elastic"``) or ``"none"``.
        user_energy: an extra energy ``"package.module:function"``: a JAX function
            U(positions (n, 3) A) -> scalar kJ/mol of the selected atoms, added to the built-in one.
        elastic: the elastic network's parameters.
    """

    __pydantic_config__ = _FORBID_EXTRA

    n_steps: Annotated[int, at.Ge(1), at.Le(100000)] = 100
    step: Annotated[float, at.Gt(0), at.Le(1.0)] = 2e-3
    k_target: Annotated[float, at.Ge(0), at.Le(1e5)] = 20.0
    temperature: Annotated[float, at.Ge(0), at.Le(2000)] = 300.0
    energy: Literal["elastic", "none"] = "elastic"
    user_energy: str | None = None
    elastic: ElasticNetworkConfig = dataclasses.field(default_factory=ElasticNetworkConfig)

    def __post_init__(self) -> None:
        _check_ranges(self)
        if self.user_energy is not None:
            mod, sep, fn = self.user_energy.partition(":")
            if not sep or not mod.strip() or not fn.strip():
                # a ValueError: pydantic reports it against this section of a configuration file
                raise ConfigError(
                    f"user_energy {self.user_energy!r} must be 'package.module:function'"
                )

    @property
    def kT(self) -> float:
        """kT in kJ/mol."""
        return KB_KJ_PER_MOL_K * self.temperature


@dataclasses.dataclass(frozen=True)
class InnerStepConfig:
    """Static settings of the jitted inner step (:func:`cryoensemble.ensemble.make_inner_step`).

    Arguments:
        step_size: ``normalized`` optimizer: distance in A every selected atom moves per step.
        optimizer: ``"normalized"`` (x_i -= step_size g_i / |g_i|), ``"adam"`` or ``"sgd"``
            (optax with ``learning_rate``).
        learning_rate: adam: A per step (roughly); sgd: A per unit gradient (loss per A).
        em_iterations: EM iterations solving the batch weights (from uniform).
    """

    step_size: Annotated[float, at.Gt(0)] = 0.5
    optimizer: Literal["normalized", "adam", "sgd"] = "normalized"
    learning_rate: Annotated[float, at.Gt(0)] = 0.1
    em_iterations: Annotated[int, at.Ge(1)] = 50

    def __post_init__(self) -> None:
        _check_ranges(self)
        if self.optimizer not in ("normalized", "adam", "sgd"):
            raise ConfigError(f"optimizer must be normalized, adam or sgd (got {self.optimizer!r})")
