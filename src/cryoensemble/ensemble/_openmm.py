"""Prior projection by molecular dynamics with OpenMM (optional extra ``cryoensemble[md]``).

Each walker continues its own Langevin trajectory under the amber14 force field (in vacuum or
in OBC2 implicit solvent) plus a bias ``0.5 k RMSD(x, target)^2`` on the selected atoms, the RMSD
taken after optimal superposition (OpenMM's ``RMSDForce`` inside a ``CustomCVForce``). See
``docs/openmm.md`` for the settings, the CHARMM -> amber14 name mapping and the timings.

OpenMM is imported only when a projector is built, so this module imports without it.

Atom orders. The walker's model (the PDB given as ``topology_pdb``) fixes *our* atom order, the
one used by the optimiser and by every output. OpenMM's system may hold more atoms (hydrogens or
heavy atoms that were missing from the file and were added here); the projector keeps the map
``md_index[i]`` = OpenMM index of our atom ``i``. Positions passed in and out are in our order, in
Angstrom; the state keeps the full OpenMM coordinates (nm) and velocities (nm/ps).

Frames. The RMSD bias does not care about rigid motions, so the trajectory may drift and turn.
After each projection the whole system (positions and velocities, an exact symmetry without a
periodic box) is moved rigidly so that its selected atoms are superposed onto the target: the
returned positions are in the frame of the particles.

Reproducibility. The integrator's random seed of each projection is derived from the walker's seed
and its step counter, and the CPU platform runs with ``DeterministicForces``: the same state gives
the same trajectory (on the same platform and thread count).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryoensemble.ensemble._projector import PriorProjector
from cryoensemble.errors import InputError, check_positive
from cryoensemble.pose import rigid_transform
from cryoensemble.structure import AtomicModel, read_structure, selection_indices

__all__ = [
    "OpenMMProjector",
    "OpenMMWalkerState",
    "amber_names",
    "require_openmm",
]

_INSTALL_HINT = "the OpenMM projector needs OpenMM: install cryoensemble[md] (pip install openmm)"

#: CHARMM residue names -> (amber/PDB residue name, amber14 variant for Modeller.addHydrogens).
_RESIDUE_MAP: dict[str, tuple[str, str | None]] = {
    "HSD": ("HIS", "HID"),
    "HSE": ("HIS", "HIE"),
    "HSP": ("HIS", "HIP"),
    "HID": ("HIS", "HID"),
    "HIE": ("HIS", "HIE"),
    "HIP": ("HIS", "HIP"),
    "ASPP": ("ASP", "ASH"),
    "GLUP": ("GLU", "GLH"),
    "LSN": ("LYS", "LYN"),
    "CYX": ("CYS", None),
    "TIP3": ("HOH", None),
    "WAT": ("HOH", None),
    "SOD": ("NA", None),
    "CLA": ("CL", None),
    "POT": ("K", None),
}

#: Atom renames OpenMM's own table (``openmm/app/data/pdbNames.xml``, applied afterwards) lacks.
_RESIDUE_ATOMS: dict[str, dict[str, str]] = {
    "PRO": {"HN1": "H2", "HN2": "H3"},  # CHARMM N-terminal proline (PROP patch)
    "HOH": {"OH2": "O"},
    "NA": {"SOD": "NA"},
    "CL": {"CLA": "CL"},
    "K": {"POT": "K"},
}


def require_openmm():
    """Import and return the ``openmm`` module, or raise :class:`InputError` naming the extra."""
    try:
        import openmm  # optional dependency (extra md)
        import openmm.app  # noqa: F401  (optional dependency, extra md)
    except ImportError:
        raise InputError(_INSTALL_HINT) from None
    return openmm


def amber_names(
    residue_names: Sequence[str] | np.ndarray,
    atom_names: Sequence[str] | np.ndarray,
    residue_index: Sequence[int] | np.ndarray,
) -> tuple[list[str], list[str], list[str | None]]:
    """Map CHARMM (and other) residue and atom names to the PDB names OpenMM's amber14 expects.

    ``residue_index`` groups the atoms into residues (one integer per atom). The CHARMM names
    (HSD/HSE/HSP, ASPP, water, ions, N-terminal PRO) are mapped here, then OpenMM's own
    replacement table (the one ``openmm.app.PDBFile`` applies: HN -> H, HT1 -> H, OT1/OT2 ->
    O/OXT, ILE CD -> CD1, HB1 -> HB3, ...). Returns the new residue name and atom name of each
    atom and, per residue (in order of first appearance), the amber14 protonation variant implied
    by the CHARMM name (HSD -> HID, ...) or None. Needs OpenMM.
    """
    require_openmm()
    from openmm.app import PDBFile  # optional dependency (extra md)

    PDBFile._loadNameReplacementTables()
    res_table = PDBFile._residueNameReplacements
    atom_tables = PDBFile._atomNameReplacements

    res_out = [str(r).strip().upper() for r in residue_names]
    atom_out = [str(a).strip().upper() for a in atom_names]
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(residue_index):
        groups.setdefault(int(r), []).append(i)
    variants: list[str | None] = []
    for members in groups.values():
        resname = res_out[members[0]]
        new_res, variant = _RESIDUE_MAP.get(resname, (resname, None))
        new_res = res_table.get(new_res, new_res)
        variants.append(variant)
        ours = _RESIDUE_ATOMS.get(new_res, {})
        table = atom_tables.get(new_res, {})
        for i in members:
            name = ours.get(atom_out[i], atom_out[i])
            res_out[i] = new_res
            atom_out[i] = table.get(name, name).strip()
    return res_out, atom_out, variants


@dataclasses.dataclass(frozen=True, eq=False)
class OpenMMWalkerState:
    """The molecular dynamics state of one walker.

    Attributes:
        md_positions: (n_md, 3) float64 positions in nm, OpenMM's atom order.
        md_velocities: (n_md, 3) float64 velocities in nm/ps, OpenMM's atom order.
        step: MD steps run so far by this walker.
        seed: the walker's seed; the seed of each projection derives from (seed, step).
        walker: the walker's index.
    """

    md_positions: np.ndarray
    md_velocities: np.ndarray
    step: int
    seed: int
    walker: int


def _integrator_seed(seed: int, walker: int, step: int) -> int:
    """A seed in [1, 2^31 - 1] (OpenMM treats 0 as 'pick at random') from (seed, walker, step)."""
    words = [int(seed) & 0xFFFFFFFF, int(walker) & 0xFFFFFFFF, int(step)]
    value = np.random.SeedSequence(words).generate_state(1)[0]
    return int(value) % (2**31 - 2) + 1


class OpenMMProjector(PriorProjector):
    """Molecular dynamics prior projection with OpenMM (amber14, Langevin, RMSD bias).

    Args:
        topology_pdb: PDB/mmCIF file (or an :class:`~cryoensemble.structure.AtomicModel`) of the
            walker's model (all walkers share its topology and
            atom order). CHARMM names are mapped to amber14 ones; missing hydrogens are added
            (``Modeller.addHydrogens``) and missing heavy atoms too when ``pdbfixer`` is
            installed. Atoms added here exist only inside the MD system.
        selection: the atoms of the RMSD bias: a spec of
            :func:`cryoensemble.structure.selection_indices` ("heavy", "calpha", ...) or indices
            into the model. :meth:`project` may be called with another selection.
        n_steps: MD steps per projection.
        k: force constant of the bias ``0.5 k RMSD^2``, kJ/mol/nm^2.
        temperature: K. friction: 1/ps. timestep: fs.
        constraints: "HBonds", "AllBonds", "HAngles" or "none".
        solvent: "vacuum" or "obc2" (amber14 with ``implicit/obc2.xml``).
        cutoff: non-bonded cutoff in nm (``CutoffNonPeriodic``, reaction field; no periodic
            box needed), as in the reference implementation; None for no cutoff (exact, but
            O(n^2): 19 ms per step for adenylate kinase on 2 cores against ~4 ms with 1 nm).
        platform: OpenMM platform name ("CPU", "CUDA", "OpenCL", "Reference").
        threads: CPU threads (CPU platform); default ``os.cpu_count()``.
        minimize_iterations: energy minimisation (under the bias towards the starting
            positions) when a walker is initialised; 0 skips it.
        align_to_target: move each walker rigidly onto the target after a projection, so that
            the returned positions are in the target's frame.
    """

    def __init__(
        self,
        topology_pdb: str | os.PathLike | AtomicModel,
        selection: str | Sequence[int] | np.ndarray = "heavy",
        n_steps: int = 400,
        k: float = 1e5,
        temperature: float = 300.0,
        friction: float = 1.0,
        timestep: float = 2.0,
        constraints: str = "HBonds",
        solvent: str = "vacuum",
        cutoff: float | None = 1.0,
        platform: str = "CPU",
        threads: int | None = None,
        minimize_iterations: int = 200,
        align_to_target: bool = True,
    ) -> None:
        openmm = require_openmm()
        from openmm import app, unit  # optional dependency (extra md)

        if int(n_steps) < 0:
            raise InputError(f"n_steps must be >= 0, got {n_steps!r}")
        if float(k) < 0 or not np.isfinite(float(k)):
            raise InputError(f"k must be a finite number >= 0, got {k!r}")
        self.n_steps = int(n_steps)
        self.k = float(k)
        self.temperature = check_positive("temperature", temperature)
        self.friction = check_positive("friction", friction)
        self.timestep = check_positive("timestep", timestep)
        self.minimize_iterations = int(minimize_iterations)
        self.align_to_target = bool(align_to_target)
        solvent = str(solvent).lower()
        if solvent not in ("vacuum", "obc2"):
            raise InputError(f"solvent must be 'vacuum' or 'obc2', got {solvent!r}")
        self.solvent = solvent
        constraint_map = {
            "hbonds": app.HBonds,
            "allbonds": app.AllBonds,
            "hangles": app.HAngles,
            "none": None,
        }
        key = str(constraints).replace("_", "").lower()
        if key not in constraint_map:
            raise InputError(
                f"constraints must be 'HBonds', 'AllBonds', 'HAngles' or 'none', got {constraints!r}"
            )

        if cutoff is not None:
            cutoff = check_positive("cutoff", cutoff)
        self.cutoff = cutoff
        if isinstance(topology_pdb, AtomicModel):
            self.model = topology_pdb
            self.source = Path(topology_pdb.source or "<model>")
        else:
            self.source = Path(topology_pdb)
            self.model = read_structure(topology_pdb)
        n = self.model.n_atoms
        if isinstance(selection, str):
            sel = selection_indices(self.model, selection)
        else:
            sel = np.asarray(selection, dtype=np.int64).reshape(-1)
        self._check_selection(sel)
        self.selection = np.sort(sel)

        files = ["amber14-all.xml", "amber14/tip3p.xml"]
        if solvent == "obc2":
            files.append("implicit/obc2.xml")
        self.forcefield = app.ForceField(*files)
        topology, positions_nm, self.md_index = self._build_topology(app, unit)
        self.topology = topology
        self.n_md_atoms = topology.getNumAtoms()
        self._template_positions = positions_nm  # nm, OpenMM order (incl. added atoms)
        self.added_atoms = self.n_md_atoms - n

        try:
            system = self.forcefield.createSystem(
                topology,
                nonbondedMethod=app.NoCutoff if cutoff is None else app.CutoffNonPeriodic,
                nonbondedCutoff=(cutoff or 1.0) * unit.nanometer,
                constraints=constraint_map[key],
                rigidWater=True,
            )
        except ValueError as exc:
            raise InputError(
                f"{self.source}: OpenMM cannot parametrise the model with amber14 ({exc}). "
                "Check residue/atom names (see docs/openmm.md); install pdbfixer to add missing "
                "heavy atoms"
            ) from None
        self._sel_md = self.md_index[self.selection]
        self._rmsd_force = openmm.RMSDForce(
            [openmm.Vec3(*p) for p in positions_nm], [int(i) for i in self._sel_md]
        )
        cv = openmm.CustomCVForce("0.5*k_rmsd*rmsd^2")
        cv.addGlobalParameter("k_rmsd", self.k)
        cv.addCollectiveVariable("rmsd", self._rmsd_force)
        self._cv_index = system.addForce(cv)
        self._cv = cv
        self.system = system

        self.integrator = openmm.LangevinMiddleIntegrator(
            self.temperature * unit.kelvin,
            self.friction / unit.picosecond,
            self.timestep * unit.femtoseconds,
        )
        self.integrator.setRandomNumberSeed(1)
        try:
            plat = openmm.Platform.getPlatformByName(platform)
        except Exception:
            names = [
                openmm.Platform.getPlatform(i).getName()
                for i in range(openmm.Platform.getNumPlatforms())
            ]
            raise InputError(f"OpenMM platform {platform!r} not available; have {names}") from None
        props: dict[str, str] = {}
        if plat.getName() == "CPU":
            self.threads = int(threads) if threads else (os.cpu_count() or 1)
            props = {"Threads": str(self.threads), "DeterministicForces": "true"}
        else:
            self.threads = None
            if plat.getName() in ("CUDA", "OpenCL"):
                props = {"Precision": "mixed"}
                if plat.getName() == "CUDA":
                    props["DeterministicForces"] = "true"
        self.platform = plat.getName()
        self.context = openmm.Context(system, self.integrator, plat, props)
        self._current_selection = self.selection

    # ------------------------------------------------------------------ building
    def _check_selection(self, sel: np.ndarray) -> None:
        n = self.model.n_atoms
        if sel.size < 3:
            raise InputError(f"the RMSD selection needs at least 3 atoms, got {sel.size}")
        if sel.min() < 0 or sel.max() >= n:
            raise InputError(f"selection index out of range for a model of {n} atoms")
        if np.unique(sel).size != sel.size:
            raise InputError("selection indices must be unique")

    def _build_topology(self, app, unit):
        """OpenMM topology and positions (nm) of the model, and our -> OpenMM index map."""
        model = self.model
        n = model.n_atoms
        # residues: consecutive atoms with the same (chain, residue id, residue name)
        keys = list(zip(model.chain_ids, model.residue_ids, model.residue_names, strict=True))
        res_index = np.zeros(n, dtype=np.int64)
        for i in range(1, n):
            res_index[i] = res_index[i - 1] + (keys[i] != keys[i - 1])
        resnames, names, variants = amber_names(model.residue_names, model.atom_names, res_index)

        top = app.Topology()
        chain = None
        residue = None
        prev_chain = None
        seen: dict[tuple[int, str], int] = {}
        for i in range(n):
            if chain is None or model.chain_ids[i] != prev_chain:
                chain = top.addChain(str(model.chain_ids[i]) or "A")
                prev_chain = model.chain_ids[i]
            if i == 0 or res_index[i] != res_index[i - 1] or residue.chain is not chain:
                residue = top.addResidue(resnames[i], chain, str(model.residue_ids[i]))
            if (int(res_index[i]), names[i]) in seen:
                raise InputError(
                    f"{self.source}: atom name {names[i]} appears twice in residue "
                    f"{model.residue_names[i]} {model.residue_ids[i]}"
                )
            seen[(int(res_index[i]), names[i])] = i
            element = app.Element.getBySymbol(str(model.elements[i]))
            top.addAtom(names[i], element, residue)
        positions = [tuple(p) for p in (model.positions / 10.0)]
        top.createStandardBonds()
        top.createDisulfideBonds([_vec(p) for p in positions])

        top, positions = self._add_missing_atoms(app, top, positions)
        modeller = app.Modeller(top, [_vec(p) for p in positions] * unit.nanometer)
        n_h_variant = [v for v in variants]
        # HIS with hydrogens already: keep the protonation the file implies
        for r_i, res in enumerate(modeller.topology.residues()):
            if res.name == "HIS" and n_h_variant[r_i] is None:
                hnames = {a.name for a in res.atoms()}
                if "HD1" in hnames and "HE2" in hnames:
                    n_h_variant[r_i] = "HIP"
                elif "HD1" in hnames:
                    n_h_variant[r_i] = "HID"
                elif "HE2" in hnames:
                    n_h_variant[r_i] = "HIE"
        try:
            modeller.addHydrogens(self.forcefield, variants=n_h_variant)
        except Exception as exc:  # OpenMM raises ValueError/Exception for unknown residues
            raise InputError(f"{self.source}: cannot add hydrogens with OpenMM ({exc})") from None
        md_top = modeller.topology
        md_pos = np.array(modeller.positions.value_in_unit(unit.nanometer), dtype=np.float64)
        lookup = {}
        for r_i, res in enumerate(md_top.residues()):
            for atom in res.atoms():
                lookup[(r_i, atom.name)] = atom.index
        md_index = np.array([lookup[(int(res_index[i]), names[i])] for i in range(n)])
        # keep the input coordinates exactly for our atoms
        md_pos[md_index] = model.positions / 10.0
        return md_top, md_pos, md_index

    def _add_missing_atoms(self, app, top, positions):
        """Add missing heavy atoms with pdbfixer when it is installed (residues are kept)."""
        try:
            import pdbfixer  # optional dependency (extra md): imported only when used
        except ImportError:
            return top, positions
        from openmm import unit  # optional dependency (extra md)

        buf = io.StringIO()
        app.PDBFile.writeFile(top, [_vec(p) for p in positions] * unit.nanometer, buf, True)
        fixer = pdbfixer.PDBFixer(pdbfile=io.StringIO(buf.getvalue()))
        fixer.missingResidues = {}
        fixer.findMissingAtoms()
        if not fixer.missingAtoms and not fixer.missingTerminals:
            return top, positions
        # PDBFile renames nothing that we produced; atoms keep (residue, name) identity
        fixer.addMissingAtoms()
        pos = fixer.positions.value_in_unit(unit.nanometer)
        return fixer.topology, [tuple(p) for p in pos]

    # ------------------------------------------------------------------ state
    def _prepare(self, md_reference_nm: np.ndarray, selection: np.ndarray, seed: int) -> None:
        """Set the RMSD reference, its atoms and the integrator seed, and rebuild the context.

        OpenMM reads the integrator's seed, and the RMSD reference of a collective variable, when
        the context is (re)initialised; ``reinitialize`` costs little next to the MD steps.
        """
        from openmm import Vec3  # optional dependency (extra md)

        sel = np.sort(np.asarray(selection, dtype=np.int64).reshape(-1))
        if not np.array_equal(sel, self._current_selection):
            self._check_selection(sel)
            self._rmsd_force.setParticles([int(i) for i in self.md_index[sel]])
            self._current_selection = sel
        self._rmsd_force.setReferencePositions([Vec3(*p) for p in md_reference_nm])
        self.integrator.setRandomNumberSeed(int(seed))
        self.context.reinitialize(preserveState=False)

    def init_state(self, positions: np.ndarray, walker: int, seed: int) -> OpenMMWalkerState:
        """Walker ``walker`` at ``positions`` (n_atoms, 3) A: minimised, velocities drawn at T."""
        from openmm import LocalEnergyMinimizer, unit  # optional dependency (extra md)

        pos = self._check_positions(positions)
        md = self._template_positions.copy()
        md[self.md_index] = pos / 10.0
        # atoms added by OpenMM follow the walker rigidly from the template
        if self.added_atoms:
            r, t = rigid_transform(self._template_positions[self.md_index], md[self.md_index])
            extra = np.setdiff1d(np.arange(self.n_md_atoms), self.md_index)
            md[extra] = self._template_positions[extra] @ r.T + t
        self._prepare(md, self.selection, _integrator_seed(seed, walker, 2**31 - 1))
        self.context.setPositions(md * unit.nanometer)
        if self.minimize_iterations > 0:
            LocalEnergyMinimizer.minimize(
                self.context, 10.0, self.minimize_iterations
            )  # tolerance kJ/mol/nm
        self.context.applyConstraints(1e-6)
        self.context.setVelocitiesToTemperature(
            self.temperature * unit.kelvin, _integrator_seed(seed, walker, 2**31 - 2)
        )
        st = self.context.getState(getPositions=True, getVelocities=True)
        return OpenMMWalkerState(
            md_positions=np.array(st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)),
            md_velocities=np.array(
                st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
            ),
            step=0,
            seed=int(seed),
            walker=int(walker),
        )

    def _check_positions(self, positions: np.ndarray) -> np.ndarray:
        pos = np.asarray(positions, dtype=np.float64)
        if pos.shape != (self.model.n_atoms, 3):
            raise InputError(
                f"positions must have shape ({self.model.n_atoms}, 3), got {pos.shape}"
            )
        if not np.all(np.isfinite(pos)):
            raise InputError("positions must be finite")
        return pos

    def project(
        self, state: OpenMMWalkerState, target: np.ndarray, selection: np.ndarray
    ) -> tuple[OpenMMWalkerState, np.ndarray]:
        """Run ``n_steps`` of biased MD from ``state`` towards ``target`` (len(selection), 3) A."""
        import openmm  # optional dependency (extra md)
        from openmm import unit  # optional dependency (extra md)

        sel = np.asarray(selection, dtype=np.int64).reshape(-1)
        tgt = np.asarray(target, dtype=np.float64)
        if tgt.shape != (sel.size, 3):
            raise InputError(f"target must have shape ({sel.size}, 3), got {tgt.shape}")
        if not np.all(np.isfinite(tgt)):
            raise InputError("target positions must be finite")
        order = np.argsort(sel)
        sel_md = self.md_index[sel]
        ref = state.md_positions.copy()
        ref[sel_md] = tgt / 10.0
        self._prepare(ref, sel, _integrator_seed(state.seed, state.walker, state.step))
        self.context.setPositions(state.md_positions * unit.nanometer)
        self.context.setVelocities(state.md_velocities * (unit.nanometer / unit.picosecond))
        if self.n_steps:
            try:
                self.integrator.step(self.n_steps)
            except openmm.OpenMMException as exc:
                raise InputError(
                    f"molecular dynamics failed for walker {state.walker} ({exc}); "
                    f"lower k (now {self.k:g} kJ/mol/nm^2) or the step size"
                ) from None
        st = self.context.getState(getPositions=True, getVelocities=True)
        pos = np.array(st.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        vel = np.array(
            st.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
        )
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(vel))):
            raise InputError(
                f"molecular dynamics blew up for walker {state.walker}; lower k "
                f"(now {self.k:g} kJ/mol/nm^2) or the time step"
            )
        if self.align_to_target:
            r, t = rigid_transform(pos[sel_md[order]], tgt[order] / 10.0)
            pos = pos @ r.T + t
            vel = vel @ r.T
        new = OpenMMWalkerState(
            md_positions=pos,
            md_velocities=vel,
            step=state.step + self.n_steps,
            seed=state.seed,
            walker=state.walker,
        )
        return new, pos[self.md_index] * 10.0

    def positions(self, state: OpenMMWalkerState) -> np.ndarray:
        """Positions (n_atoms, 3) A of the walker, in the input model's atom order."""
        return state.md_positions[self.md_index] * 10.0

    def state_dict(self, state: OpenMMWalkerState) -> dict[str, np.ndarray]:
        """Named arrays of the state.

        ``positions`` (n_atoms, 3) A in our order; ``velocities`` (n_md, 3) nm/ps and
        ``md_positions`` (n_md, 3) nm in OpenMM's order; ``step``, ``seed``, ``walker``. A caller
        may move ``positions`` rigidly and rotate ``velocities`` with it (the optimiser's
        re-alignment does): :meth:`load_state` carries the atoms that exist only in the MD
        system along with the same rigid motion.
        """
        return {
            "positions": self.positions(state),
            "velocities": np.array(state.md_velocities, dtype=np.float64),
            "md_positions": np.array(state.md_positions, dtype=np.float64),
            "step": np.array(state.step, dtype=np.int64),
            "seed": np.array(state.seed, dtype=np.int64),
            "walker": np.array(state.walker, dtype=np.int64),
        }

    def load_state(self, arrays: dict[str, Any]) -> OpenMMWalkerState:
        """Inverse of :meth:`state_dict` (honours a rigid motion applied to ``positions``)."""
        keys = ("positions", "velocities", "md_positions", "step", "seed", "walker")
        missing = [k for k in keys if k not in arrays]
        if missing:
            raise InputError(f"OpenMM walker state lacks {missing}")
        md = np.array(arrays["md_positions"], dtype=np.float64)
        vel = np.array(arrays["velocities"], dtype=np.float64)
        shape = (self.n_md_atoms, 3)
        if md.shape != shape or vel.shape != shape:
            raise InputError(
                f"OpenMM walker state: md_positions/velocities must have shape {shape}, got "
                f"{md.shape} and {vel.shape} (a state from another model?)"
            )
        pos = self._check_positions(arrays["positions"])
        if not np.array_equal(pos, md[self.md_index] * 10.0):
            if self.added_atoms:
                r, t = rigid_transform(md[self.md_index], pos / 10.0)
                md = md @ r.T + t
            md[self.md_index] = pos / 10.0
        return OpenMMWalkerState(
            md_positions=md,
            md_velocities=vel,
            step=int(arrays["step"]),
            seed=int(arrays["seed"]),
            walker=int(arrays["walker"]),
        )

    def potential_energy(self, state: OpenMMWalkerState, with_bias: bool = False) -> float:
        """Potential energy (kJ/mol) of the walker, without the RMSD bias unless asked."""
        from openmm import unit  # optional dependency (extra md)

        self.context.setPositions(state.md_positions * unit.nanometer)
        self.context.setParameter("k_rmsd", self.k if with_bias else 0.0)
        e = self.context.getState(getEnergy=True).getPotentialEnergy()
        self.context.setParameter("k_rmsd", self.k)
        return float(e.value_in_unit(unit.kilojoule_per_mole))


def _vec(p):
    from openmm import Vec3  # optional dependency (extra md)

    return Vec3(float(p[0]), float(p[1]), float(p[2]))
