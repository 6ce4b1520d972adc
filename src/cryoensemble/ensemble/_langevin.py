"""Pure-JAX prior projector: steered overdamped Langevin dynamics under an elastic-network prior
(and/or a user energy), plus the rigid carrying of unselected atoms (hydrogens).

The dynamics acts on the atoms selected for the likelihood (positions x (n, 3) in A)::

    x <- x - h (grad U(x) + k (x - target)) + sqrt(2 h kT) xi,    xi ~ N(0, I)

with U in kJ/mol, h in A^2/(kJ/mol), k in kJ/mol/A^2 and kT in kJ/mol. All ``n_steps`` steps run in
one jit-compiled ``lax.fori_loop``; the random stream is a JAX key kept in the walker's state, so a
projection is a deterministic function of the state (checkpoints resume exactly).

The built-in energy (:func:`build_elastic_network`, :func:`elastic_energy`) is documented in
:class:`~cryoensemble.ensemble.ElasticNetworkConfig`. Unselected atoms follow the
selected atoms of their residue rigidly (least-squares superposition of the residue's selected
atoms before and after; a translation when it has fewer than 3; the nearest selected atom when it
has none): :class:`RigidCarry`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float
from scipy.spatial import cKDTree

from cryoensemble.ensemble._config import ElasticNetworkConfig, LangevinConfig
from cryoensemble.ensemble._projector import PriorProjector
from cryoensemble.errors import ConfigError, InputError
from cryoensemble.pose import kabsch_batched

__all__ = [
    "ElasticNetwork",
    "LangevinProjector",
    "LangevinState",
    "NoProjector",
    "RigidCarry",
    "build_elastic_network",
    "elastic_energy",
    "load_user_energy",
    "repulsion_pairs",
]


# ------------------------------------------------------------------------------------------------
# the elastic network
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ElasticNetwork:
    """Pairs (i, j) with their reference distances (A) and the parameters (kJ/mol, A)."""

    local_pairs: np.ndarray  # (P, 2) int32
    local_d0: np.ndarray  # (P,) float32
    contact_pairs: np.ndarray  # (Q, 2) int32
    contact_d0: np.ndarray  # (Q,) float32
    params: ElasticNetworkConfig
    n_atoms: int

    def excluded_codes(self) -> np.ndarray:
        """Sorted codes i * n + j (i < j) of the network pairs (excluded from the repulsion)."""
        p = np.concatenate([self.local_pairs, self.contact_pairs]).astype(np.int64)
        return np.unique(p.min(1) * self.n_atoms + p.max(1))


def build_elastic_network(
    positions: Float[ArrayLike, "n 3"],
    residue_ids: ArrayLike,
    chain_ids: ArrayLike,
    params: ElasticNetworkConfig | None = None,
) -> ElasticNetwork:
    """The elastic network of atoms at reference ``positions`` (see the module doc).

    Arguments:
        positions: (n, 3) reference positions, A.
        residue_ids: (n,) residue numbers (local springs join residues close in sequence).
        chain_ids: (n,) chain identifiers.
        params: the network's parameters (default :class:`ElasticNetworkConfig`).
    """
    params = params or ElasticNetworkConfig()
    x = np.asarray(positions, np.float64)
    n = len(x)
    res = np.asarray(residue_ids, np.int64)
    chain = np.asarray(chain_ids).astype(str)
    cut = max(params.local_cutoff, params.contact_cutoff)
    pairs = cKDTree(x).query_pairs(cut, output_type="ndarray") if n > 1 else np.zeros((0, 2))
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    d = np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1)
    same_chain = chain[pairs[:, 0]] == chain[pairs[:, 1]]
    near_seq = same_chain & (
        np.abs(res[pairs[:, 0]] - res[pairs[:, 1]]) <= params.sequence_separation
    )
    local = near_seq & (d <= params.local_cutoff)
    contact = ~near_seq & (d <= params.contact_cutoff) & (params.contact_depth > 0)
    return ElasticNetwork(
        local_pairs=pairs[local].astype(np.int32),
        local_d0=d[local].astype(np.float32),
        contact_pairs=pairs[contact].astype(np.int32),
        contact_d0=d[contact].astype(np.float32),
        params=params,
        n_atoms=n,
    )


def _pair_distances(x, pairs):
    diff = x[pairs[:, 0]] - x[pairs[:, 1]]
    return jnp.sqrt(jnp.sum(diff * diff, axis=-1) + 1e-12)


_PARAM_NAMES = ("k_local", "contact_depth", "contact_width", "repulsion_distance", "k_repulsion")


def _param_values(params) -> dict:
    if isinstance(params, dict):
        return params
    return {k: jnp.float32(getattr(params, k)) for k in _PARAM_NAMES}


def elastic_energy(
    x: Float[Array, "n 3"], net_arrays: dict, rep_pairs, rep_mask, params
) -> Float[Array, ""]:
    """The elastic-network energy (kJ/mol) of positions ``x`` (JAX, differentiable).

    Arguments:
        x: (n, 3) positions, A.
        net_arrays: local_pairs, local_d0, contact_pairs, contact_d0 (device arrays).
        rep_pairs: (R, 2) repulsion pairs from :func:`repulsion_pairs` (or None).
        rep_mask: (R,) 1 for real pairs, 0 for padding.
        params: an :class:`ElasticNetworkConfig` (or a dict of its spring constants and lengths).
    """
    params = _param_values(params)
    e = jnp.zeros((), x.dtype)
    if net_arrays["local_pairs"].shape[0]:
        d = _pair_distances(x, net_arrays["local_pairs"])
        e = e + 0.5 * params["k_local"] * jnp.sum((d - net_arrays["local_d0"]) ** 2)
    if net_arrays["contact_pairs"].shape[0]:
        d = _pair_distances(x, net_arrays["contact_pairs"])
        u = (d - net_arrays["contact_d0"]) / params["contact_width"]
        e = e - params["contact_depth"] * jnp.sum(jnp.exp(-0.5 * u * u))
    if rep_pairs is not None and rep_pairs.shape[0]:
        d = _pair_distances(x, rep_pairs)
        over = jnp.maximum(params["repulsion_distance"] - d, 0.0)
        e = e + 0.5 * params["k_repulsion"] * jnp.sum(rep_mask * over * over)
    return e


def repulsion_pairs(
    x: Float[ArrayLike, "n 3"], network: ElasticNetwork, skin: float = 4.0, capacity: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Neighbour list for the repulsion: pairs closer than ``repulsion_distance + skin`` at ``x``
    that are not in the network, padded to a power-of-two capacity (>= ``capacity``) so that the
    compiled dynamics is reused. Returns (pairs (R, 2) int32, mask (R,) float32, R).

    Arguments:
        x: (n, 3) current positions, A.
        network: the elastic network (its pairs are excluded; its parameters give the distance).
        skin: extra distance, A, so that the list stays valid while atoms move.
        capacity: smallest padded size.
    """
    p = network.params
    if p.repulsion_distance <= 0 or p.k_repulsion <= 0 or len(x) < 2:
        return np.zeros((0, 2), np.int32), np.zeros(0, np.float32), 0
    pairs = np.asarray(
        cKDTree(np.asarray(x, np.float64)).query_pairs(
            p.repulsion_distance + skin, output_type="ndarray"
        ),
        np.int64,
    ).reshape(-1, 2)
    codes = pairs.min(1) * network.n_atoms + pairs.max(1)
    pairs = pairs[~np.isin(codes, network.excluded_codes())]
    r = max(int(capacity), 1 << max(int(np.ceil(np.log2(max(len(pairs), 1)))), 4))
    out = np.zeros((r, 2), np.int32)
    mask = np.zeros(r, np.float32)
    out[: len(pairs)] = pairs
    mask[: len(pairs)] = 1.0
    return out, mask, r


def load_user_energy(spec: str) -> Callable:
    """Import ``package.module:function`` (a JAX function U(positions (n, 3) A) -> kJ/mol).

    Arguments:
        spec: ``"package.module:function"`` (the function may be a dotted attribute path).
    """
    mod_name, _, fn_name = spec.partition(":")
    try:  # importing the user's module by name is this function's job
        mod = importlib.import_module(mod_name.strip())
    except Exception as err:
        raise ConfigError(
            f"user_energy {spec!r}: cannot import module {mod_name!r} ({err})"
        ) from None
    fn = mod
    for part in fn_name.strip().split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ConfigError(f"user_energy {spec!r}: {mod_name} has no attribute {fn_name!r}")
    if not callable(fn):
        raise ConfigError(f"user_energy {spec!r}: {fn_name} is not callable")
    return fn


# ------------------------------------------------------------------------------------------------
# rigid carrying of the unselected atoms
# ------------------------------------------------------------------------------------------------
def _group_fit(a: np.ndarray, b: np.ndarray, w: np.ndarray):
    """Rotations R (g, 3, 3) and centroids ca, cb (g, 3) with b ~ R (a - ca) + cb per group
    (weighted least squares, :func:`cryoensemble.pose.kabsch_batched`)."""
    ws = np.maximum(w.sum(1, keepdims=True), 1e-12)
    ca = (w[..., None] * a).sum(1) / ws
    cb = (w[..., None] * b).sum(1) / ws
    r = kabsch_batched(
        jnp.asarray(a - ca[:, None], jnp.float32),
        jnp.asarray(b - cb[:, None], jnp.float32),
        jnp.asarray(w, jnp.float32),
    )
    return np.asarray(r, np.float64), ca, cb


class RigidCarry:
    """Moves the unselected atoms of a model with the selected atoms of their residue.

    An unselected atom follows the least-squares rigid motion of the selected atoms of its
    residue (chain, residue id), extended to the neighbouring residues i - 1 and i + 1 when the
    residue has fewer than 3 (e.g. Calpha selections); with fewer than 3 even then, their mean
    displacement; atoms of a residue without selected atoms follow the nearest selected atom.
    """

    def __init__(self, positions, chain_ids, residue_ids, selection):
        n = len(positions)
        sel = np.asarray(selection, np.int64)
        pos = np.asarray(positions, np.float64)
        self.n_atoms = n
        self.selection = sel
        is_sel = np.zeros(n, bool)
        is_sel[sel] = True
        self.unselected = np.flatnonzero(~is_sel)
        if len(self.unselected) and len(sel) == 0:
            raise InputError("no atoms selected: nothing to carry the other atoms with")
        chains = np.asarray(chain_ids).astype(str)
        resid = np.asarray(residue_ids, np.int64)
        members: dict[tuple, list[int]] = {}
        for k, i in enumerate(sel):
            members.setdefault((chains[i], int(resid[i])), []).append(k)

        def anchors(key):
            own = members.get(key, [])
            if len(own) >= 3:
                return own
            c, r = key
            grown = members.get((c, r - 1), []) + own + members.get((c, r + 1), [])
            return grown if len(grown) >= 3 else own

        gid: dict = {}
        lists: list[list[int]] = []
        self.atom_group = np.zeros(len(self.unselected), np.int64)
        tree = None
        for k, i in enumerate(self.unselected):
            key = (chains[i], int(resid[i]))
            lst = anchors(key)
            if not lst:  # a residue without selected atoms: follow the nearest selected atom
                if tree is None:
                    tree = cKDTree(pos[sel])
                _, j = tree.query(pos[i])
                key, lst = ("nearest", int(j)), [int(j)]
            if key not in gid:
                gid[key] = len(lists)
                lists.append(lst)
            self.atom_group[k] = gid[key]
        gmax = max((len(x) for x in lists), default=1)
        self.index = np.zeros((len(lists), gmax), np.int64)
        self.weight = np.zeros((len(lists), gmax))
        for k, lst in enumerate(lists):
            self.index[k, : len(lst)] = lst
            self.weight[k, : len(lst)] = 1.0
        self.rigid = self.weight.sum(1) >= 3

    def __call__(self, old_full: np.ndarray, new_selected: np.ndarray) -> np.ndarray:
        """Full positions (n, 3) after the selected atoms moved to ``new_selected``."""
        out = np.array(old_full, dtype=np.float64, copy=True)
        new_selected = np.asarray(new_selected, np.float64)
        old_sel = out[self.selection]
        out[self.selection] = new_selected
        if len(self.unselected) == 0:
            return out
        a = old_sel[self.index]
        b = new_selected[self.index]
        r, ca, cb = _group_fit(a, b, self.weight)
        r = np.where(self.rigid[:, None, None], r, np.eye(3)[None])
        g = self.atom_group
        rel = out[self.unselected] - ca[g]
        out[self.unselected] = np.einsum("aij,aj->ai", r[g], rel) + cb[g]
        return out


# ------------------------------------------------------------------------------------------------
# projectors
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LangevinState:
    """A walker: all-atom positions (n, 3) A (float64) and its JAX key data (uint32)."""

    positions: np.ndarray
    key: np.ndarray
    walker: int = 0
    capacity: int = 0  # size of the padded repulsion neighbour list (part of the state)


def _walker_key(seed: int, walker: int) -> np.ndarray:
    k = jax.random.fold_in(jax.random.PRNGKey(int(seed) % (2**32)), 1000 + int(walker))
    return np.asarray(k, np.uint32)


def _total_energy(x, net, rep_pairs, rep_mask, params, user_energy):
    e = jnp.zeros((), x.dtype)
    if net is not None:
        e = e + elastic_energy(x, net, rep_pairs, rep_mask, params)
    if user_energy is not None:
        e = e + jnp.asarray(user_energy(x), x.dtype)
    return e


@functools.partial(jax.jit, static_argnames=("n_steps", "user_energy"))
def _langevin(x, target, key, net, rep_pairs, rep_mask, params, h, k, kT, n_steps, user_energy):
    """``n_steps`` steered overdamped Langevin steps (module level: one compilation serves every
    projector with the same shapes and user energy)."""
    grad_u = jax.grad(_total_energy)
    noise_scale = jnp.sqrt(2.0 * h * kT)

    def body(_, carry):
        x, key = carry
        key, sub = jax.random.split(key)
        force = grad_u(x, net, rep_pairs, rep_mask, params, user_energy) + k * (x - target)
        xi = jax.random.normal(sub, x.shape, x.dtype)
        return x - h * force + noise_scale * xi, key

    return jax.lax.fori_loop(0, n_steps, body, (x, key))


class NoProjector(PriorProjector):
    """No prior: the selected atoms go exactly to the target (plain projected gradient descent);
    the other atoms follow rigidly."""

    def __init__(self, carry: RigidCarry | None = None):
        self.carry = carry

    def init_state(self, positions, walker, seed):
        return LangevinState(
            np.asarray(positions, np.float64).copy(), _walker_key(seed, walker), int(walker)
        )

    def project(self, state, target, selection):
        target = np.asarray(target, np.float64)
        if self.carry is None:
            new = state.positions.copy()
            new[np.asarray(selection)] = target
        else:
            new = self.carry(state.positions, target)
        return LangevinState(new, state.key.copy(), state.walker, state.capacity), new

    def state_dict(self, state):
        return {
            "positions": np.asarray(state.positions),
            "key": np.asarray(state.key),
            "walker": np.asarray(state.walker, np.int64),
            "capacity": np.asarray(state.capacity, np.int64),
        }

    def load_state(self, arrays):
        return LangevinState(
            np.asarray(arrays["positions"], np.float64),
            np.asarray(arrays["key"], np.uint32),
            int(np.asarray(arrays.get("walker", 0))),
            int(np.asarray(arrays.get("capacity", 0))),
        )


class LangevinProjector(NoProjector):
    """Steered overdamped Langevin dynamics under the elastic network and/or a user energy.

    ``networks``: one :class:`ElasticNetwork` per walker (over the selected atoms; None for no
    built-in energy, or a single network shared by all); ``user_energy``: a JAX function
    U(positions (n_sel, 3)) -> kJ/mol or None; ``carry``: a :class:`RigidCarry` for the
    unselected atoms (None when all atoms are selected).
    """

    def __init__(
        self,
        config: LangevinConfig,
        networks: list[ElasticNetwork | None] | ElasticNetwork | None = None,
        user_energy: Callable | None = None,
        carry: RigidCarry | None = None,
    ):
        super().__init__(carry)
        self.config = config
        self.networks = networks
        self.user_energy = user_energy
        if config.energy == "none" and user_energy is None and config.k_target == 0:
            raise ConfigError("langevin: no energy and k_target = 0: the dynamics is a random walk")

    def _network(self, walker: int) -> ElasticNetwork | None:
        if self.config.energy == "none" or self.networks is None:
            return None
        if isinstance(self.networks, ElasticNetwork):
            return self.networks
        return self.networks[walker % len(self.networks)]

    def energy(self, positions_selected, walker: int = 0) -> float:
        """U (kJ/mol) of the selected atoms' positions (for diagnostics and tests)."""
        x = jnp.asarray(positions_selected, jnp.float32)
        net = self._network(walker)
        arrays, rep, mask, _ = self._net_arrays(net, np.asarray(positions_selected))
        params = _param_values(self.config.elastic)
        return float(_total_energy(x, arrays, rep, mask, params, self.user_energy))

    def _net_arrays(self, net, x, capacity: int = 0):
        if net is None:
            return None, None, None, 0
        arrays = {
            "local_pairs": jnp.asarray(net.local_pairs),
            "local_d0": jnp.asarray(net.local_d0),
            "contact_pairs": jnp.asarray(net.contact_pairs),
            "contact_d0": jnp.asarray(net.contact_d0),
        }
        # the padded size lives in the walker's state (results depend on the state only); it
        # starts at the larger of twice the first count and twice the number of atoms (rounded
        # up to a power of two), so that the compiled dynamics is rarely rebuilt
        rep, mask, cap = repulsion_pairs(x, net, capacity=capacity)
        if capacity == 0 and cap:
            first = max(2 * cap, 1 << int(np.ceil(np.log2(max(2 * len(x), 16)))))
            rep, mask, cap = repulsion_pairs(x, net, capacity=first)
        return arrays, jnp.asarray(rep), jnp.asarray(mask), cap

    def project(self, state, target, selection):
        sel = np.asarray(selection)
        x0 = np.asarray(state.positions, np.float64)[sel]
        net = self._network(state.walker)
        arrays, rep, mask, cap = self._net_arrays(net, x0, state.capacity)
        c = self.config
        x, key = _langevin(
            jnp.asarray(x0, jnp.float32),
            jnp.asarray(target, jnp.float32),
            jnp.asarray(state.key, jnp.uint32),
            arrays,
            rep,
            mask,
            _param_values(c.elastic),
            jnp.float32(c.step),
            jnp.float32(c.k_target),
            jnp.float32(c.kT),
            n_steps=int(c.n_steps),
            user_energy=self.user_energy,
        )
        x = np.asarray(x, np.float64)
        if not np.all(np.isfinite(x)):
            raise InputError(
                "langevin projection diverged (non-finite positions): reduce projector.langevin."
                "step or the spring constants (h x (springs + k_target) must stay well below 1)"
            )
        if self.carry is None:
            new = state.positions.copy()
            new[sel] = x
        else:
            new = self.carry(state.positions, x)
        return LangevinState(new, np.asarray(key, np.uint32), state.walker, cap), new
