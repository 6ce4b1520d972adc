"""Reading PDB/mmCIF files into :class:`AtomicModel` and writing PDB files.

Files are parsed with gemmi. For PDB files the raw ATOM/HETATM records are also scanned here,
so that error messages can name the line, the element column (77-78) is read verbatim (gemmi's
guess from the atom name is not trusted: CA would become calcium), and CHARMM's four-letter
residue names (TIP3, ASPP) are kept whole.
"""

from __future__ import annotations

import collections
import gzip
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from cryoensemble.errors import InputError
from cryoensemble.structure._elements import (
    ION_RESIDUES,
    STANDARD_RESIDUES,
    atomic_number,
    infer_element,
    normalize_symbol,
)
from cryoensemble.structure._model import AtomicModel

__all__ = ["read_models", "read_structure", "write_multimodel_pdb", "write_pdb"]

_CIF_SUFFIXES = (".cif", ".mmcif", ".bcif")
# _atom_site columns gemmi needs to build atoms (without them it silently finds none).
_CIF_REQUIRED = ("id", "type_symbol", "label_alt_id", "label_asym_id", "Cartn_x", "Cartn_y",
                 "Cartn_z")  # fmt: skip
_CIF_EITHER = (("label_atom_id", "auth_atom_id"), ("label_comp_id", "auth_comp_id"))
_MISSING = ("?", ".")


@dataclass(frozen=True)
class _Record:
    """One ATOM/HETATM line of a PDB file, as written."""

    line: int
    name: str
    altloc: str
    resname: str | None  # set only for four-letter (CHARMM) residue names
    chain: str | None
    element: str  # columns 77-78, stripped
    xyz: tuple[float, float, float]
    has_b_factor: bool  # columns 61-66 not blank


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read the file ({exc})") from None
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise InputError(f"{path}: the file is empty")
    return text


def _is_cif(path: Path, text: str) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(_CIF_SUFFIXES):
        return True
    if name.endswith((".pdb", ".ent", ".pqr")):
        return False
    return text.lstrip().startswith("data_")


def _parse_float(text: str, path: Path, lineno: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}:{lineno}: cannot read {what} from {text.strip()!r}") from None
    if not np.isfinite(value):
        raise InputError(f"{path}:{lineno}: {what} is not finite ({text.strip()!r})")
    return value


def _parse_record(line: str, lineno: int, path: Path) -> _Record:
    if len(line.rstrip()) < 54:
        raise InputError(
            f"{path}:{lineno}: atom record is too short to hold x, y, z (columns 31-54)"
        )
    xyz = tuple(
        _parse_float(line[lo:hi], path, lineno, f"{axis} (columns {lo + 1}-{hi})")
        for axis, lo, hi in (("x", 30, 38), ("y", 38, 46), ("z", 46, 54))
    )
    res4 = line[17:21].strip()
    four = len(res4) == 4 and (res4 in STANDARD_RESIDUES or res4 in ION_RESIDUES)
    return _Record(
        line=lineno,
        name=line[12:16].strip(),
        altloc=line[16].strip(),
        resname=res4 if four else None,
        chain=line[21:22].strip() if four else None,
        element=line[76:78].strip(),
        xyz=xyz,  # type: ignore[arg-type]
        has_b_factor=bool(line[60:66].strip()),
    )


def _scan_pdb(path: Path, text: str) -> list[list[_Record]]:
    """ATOM/HETATM records of each model, in file order."""
    models: list[list[_Record]] = [[]]
    for lineno, line in enumerate(text.split("\n"), start=1):  # gemmi's lines, not splitlines'
        line = line.rstrip("\r")
        if line[:4].upper() in ("ATOM", "HETA", "ANIS") and not line.isascii():
            # gemmi cuts records at byte columns: a multi-byte character shifts every field
            raise InputError(f"{path}:{lineno}: non-ASCII character in an atom record")
        tag = line[:6]
        if tag.startswith("MODEL"):
            if models[-1]:
                models.append([])
        elif tag in ("ATOM  ", "HETATM") or tag.rstrip() == "ATOM":
            models[-1].append(_parse_record(line, lineno, path))
    return [m for m in models if m]


def _key(name: str, altloc: str, xyz: Sequence[float]) -> tuple:
    return (name, altloc, *(round(float(v), 3) for v in xyz))


def _record_index(records: list[_Record]) -> dict[tuple, collections.deque]:
    index: dict[tuple, collections.deque] = collections.defaultdict(collections.deque)
    for rec in records:
        index[_key(rec.name, rec.altloc, rec.xyz)].append(rec)
    return index


def _parse_structure(path: Path, text: str, cif: bool, b_factors: bool) -> gemmi.Structure:
    try:
        if cif:
            block = gemmi.cif.read_string(text).sole_block()
            _check_atom_site(path, block, b_factors)
            return gemmi.make_structure_from_block(block)
        return gemmi.read_pdb_string(text)
    except InputError:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:
        kind = "mmCIF" if cif else "PDB"
        detail = " ".join(str(exc).split())  # gemmi quotes the offending line: keep one line
        raise InputError(f"{path}: cannot parse the file as {kind}: {detail}") from None


def _check_atom_site(path: Path, block: gemmi.cif.Block, b_factors: bool) -> None:
    """The _atom_site columns atoms are built from exist (named if not); B-factors if wanted."""
    table = block.find_mmcif_category("_atom_site.")
    tags = {t.removeprefix("_atom_site.") for t in table.tags}
    if not tags:
        raise InputError(f"{path}: no _atom_site table (no atoms)")
    for name in _CIF_REQUIRED:
        if name not in tags:
            raise InputError(f"{path}: mmCIF _atom_site has no column _atom_site.{name}")
    for a, b in _CIF_EITHER:
        if a not in tags and b not in tags:
            raise InputError(
                f"{path}: mmCIF _atom_site has neither column _atom_site.{a} nor _atom_site.{b}"
            )
    if not b_factors:
        return
    if "B_iso_or_equiv" not in tags:
        raise InputError(
            f"{path}: B-factors were asked for but the file has no column _atom_site.B_iso_or_equiv"
        )
    for row, value in enumerate(table.find_column("_atom_site.B_iso_or_equiv")):
        if value in _MISSING:
            raise InputError(
                f"{path}: B-factors were asked for but _atom_site.B_iso_or_equiv of atom row "
                f"{row + 1} is {value!r} (unknown)"
            )


def _pick_altlocs(residue: gemmi.Residue) -> list[gemmi.Atom]:
    """One atom per name: the highest-occupancy alternate location (ties: the first)."""
    best: dict[str, gemmi.Atom] = {}
    for atom in residue:
        kept = best.get(atom.name)
        if kept is None or atom.occ > kept.occ:
            best[atom.name] = atom
    return list(best.values())


def _element(
    atom, rec: _Record | None, resname: str, resid: int | None, path: Path, cif: bool
) -> str:
    if cif:
        symbol = atom.element.name
        if atom.element.atomic_number == 0:
            raise InputError(
                f"{path}: atom {atom.serial} ({atom.name!r} in residue {resname} {resid}): "
                "missing or unknown _atom_site.type_symbol"
            )
        return symbol
    where = f"{path}:{rec.line}" if rec else f"{path}: atom {atom.serial}"
    raw = rec.element if rec else ""
    if not raw:
        return infer_element(atom.name, resname, resid, where)
    symbol = normalize_symbol(raw)
    if symbol is None:
        raise InputError(
            f"{where}: unknown element {raw!r} in columns 77-78 of atom {atom.name!r} "
            f"in residue {resname} {resid}"
        )
    return symbol


def _model_columns(model: gemmi.Model, records, path: Path, cif: bool) -> dict[str, list]:
    index = _record_index(records) if records is not None else {}
    cols: dict[str, list] = collections.defaultdict(list)
    for chain in model:
        for residue in chain:
            for atom in _pick_altlocs(residue):
                xyz = (atom.pos.x, atom.pos.y, atom.pos.z)
                queue = index.get(_key(atom.name, atom.altloc.strip("\0 "), xyz))
                rec = queue.popleft() if queue else None
                resname = rec.resname if rec and rec.resname else residue.name
                chain_id = rec.chain if rec and rec.resname else chain.name
                if residue.seqid.num is None:
                    raise InputError(
                        f"{path}: atom {atom.serial} ({atom.name!r} in residue {resname}) "
                        "has no residue number (_atom_site.auth_seq_id or label_seq_id)"
                    )
                element = _element(atom, rec, resname, residue.seqid.num, path, cif)
                cols["positions"].append(xyz)
                cols["elements"].append(element)
                cols["b_factors"].append(atom.b_iso)
                cols["occupancies"].append(atom.occ)
                cols["atom_names"].append(atom.name)
                cols["residue_names"].append(resname)
                cols["residue_ids"].append(residue.seqid.num)
                cols["chain_ids"].append(chain_id)
                cols["is_hetero"].append(residue.het_flag == "H")
                cols["where"].append(f"{path}:{rec.line}" if rec else f"{path}: atom {atom.serial}")
    return cols


def _check_finite(cols: dict[str, list]) -> None:
    """Coordinates, occupancies and B-factors are finite (mmCIF '?' or 'abc' parse as NaN)."""
    for key, what in (
        ("positions", "coordinates (_atom_site.Cartn_x/y/z)"),
        ("occupancies", "occupancy"),
        ("b_factors", "B-factor"),
    ):
        values = np.asarray(cols[key], dtype=np.float64)
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{cols['where'][k]}: {what} of atom {cols['atom_names'][k]!r} in residue "
                f"{cols['residue_names'][k]} {cols['residue_ids'][k]} is not a finite number "
                f"({values[k]})"
            )


def _check_pdb_b_factors(path: Path, records: list[list[_Record]]) -> None:
    """With B-factors asked for, every PDB atom record fills columns 61-66."""
    for model in records:
        for rec in model:
            if not rec.has_b_factor:
                raise InputError(
                    f"{path}:{rec.line}: B-factors were asked for but columns 61-66 of atom "
                    f"{rec.name!r} are blank"
                )


def _to_model(cols: dict[str, list], path: Path) -> AtomicModel:
    _check_finite(cols)
    return AtomicModel(
        positions=np.asarray(cols["positions"], dtype=np.float64).reshape(-1, 3),
        atomic_numbers=np.array([atomic_number(e) for e in cols["elements"]], dtype=np.int64),
        source=str(path),
        **{k: np.asarray(v) for k, v in cols.items() if k not in ("positions", "where")},
    )


def _load(path: str | os.PathLike, model_index: int | None, b_factors: bool) -> list[AtomicModel]:
    p = Path(path)
    text = _read_text(p)
    cif = _is_cif(p, text)
    records = None if cif else _scan_pdb(p, text)
    if records is not None and b_factors:
        _check_pdb_b_factors(p, records)
    structure = _parse_structure(p, text, cif, b_factors)
    n = len(structure)
    if n == 0 or all(m.count_atom_sites() == 0 for m in structure):
        raise InputError(f"{p}: no atoms found (no ATOM/HETATM records or _atom_site rows)")
    wanted = range(n) if model_index is None else [_check_index(p, model_index, n)]
    models = []
    for i in wanted:
        recs = records[i] if records is not None and i < len(records) else None
        cols = _model_columns(structure[i], recs if recs is not None else [], p, cif)
        if not cols["positions"]:
            raise InputError(f"{p}: model {i + 1} of {n} has no atoms")
        models.append(_to_model(cols, p))
    return models


def _check_index(path: Path, model_index: int, n: int) -> int:
    if not isinstance(model_index, int | np.integer) or not 0 <= model_index < n:
        plural = "model" if n == 1 else "models"
        raise InputError(
            f"{path}: model_index {model_index!r} is out of range; the file has {n} {plural} "
            f"(valid indices 0 to {n - 1})"
        )
    return int(model_index)


def read_structure(
    path: str | os.PathLike, model_index: int = 0, require_b_factors: bool = False
) -> AtomicModel:
    """Read one model of a PDB or mmCIF file (optionally gzipped) as an :class:`AtomicModel`.

    Positions are in Angstrom and B-factors in Angstrom^2. Of alternate locations, the one with
    the highest occupancy is kept (ties: the first). Elements come from the element column, or
    are inferred from atom and residue names when it is empty (see
    :func:`cryoensemble.structure.infer_element`). Raises :class:`InputError` for a
    missing, empty or unparsable file, a file without atoms or without a column atoms need
    (named), a coordinate, occupancy or B-factor that is not a finite number, or an
    out-of-range ``model_index``.

    Arguments:
        path: a ``.pdb``, ``.cif``/``.mmcif`` file, optionally ``.gz`` (the format is detected
            from the content).
        model_index: which model of a multi-model file (0-based).
        require_b_factors: the file must give every atom's B-factor (PDB columns 61-66,
            mmCIF ``_atom_site.B_iso_or_equiv``); without it, missing B-factors take gemmi's
            default (20 A^2 for mmCIF). Set it when the B-factors will be used.
    """
    return _load(path, model_index, require_b_factors)[0]


def read_models(path: str | os.PathLike, require_b_factors: bool = False) -> list[AtomicModel]:
    """Read all models of a (multi-model) PDB or mmCIF file, in file order.

    Arguments:
        path: a PDB or mmCIF file, optionally gzipped (see :func:`read_structure`).
        require_b_factors: the file must give every atom's B-factor (see
            :func:`read_structure`).
    """
    return _load(path, None, require_b_factors)


# ----------------------------------------------------------------------------------- writing

_HY36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _hy36(value: int, width: int) -> str:
    """Hybrid-36 encoding of a serial or residue number in ``width`` columns."""
    if -(10 ** (width - 1)) < value < 10**width:
        return str(value).rjust(width)
    n = value - 10**width + 10 * 36 ** (width - 1)
    if value < 0 or n >= 36**width:
        raise InputError(f"number {value} does not fit in {width} PDB columns")
    digits = []
    for _ in range(width):
        n, r = divmod(n, 36)
        digits.append(_HY36[r])
    return "".join(reversed(digits))


def _atom_name_field(name: str, element: str) -> str:
    if len(name) >= 4 or len(element) == 2:
        return name[:4].ljust(4)
    return (" " + name).ljust(4)


def _atom_lines(model: AtomicModel, positions: np.ndarray) -> list[str]:
    if np.abs(positions).max(initial=0.0) >= 9999.9995:
        raise InputError("coordinates must be below 10000 Angstrom in magnitude to fit a PDB file")
    lines = []
    for i in range(model.n_atoms):
        x, y, z = positions[i]
        element = str(model.elements[i])
        lines.append(
            f"{'HETATM' if model.is_hetero[i] else 'ATOM  '}{_hy36(i + 1, 5)} "
            f"{_atom_name_field(str(model.atom_names[i]), element)} "
            f"{str(model.residue_names[i])[:4]:<4}{str(model.chain_ids[i])[:1]:1}"
            f"{_hy36(int(model.residue_ids[i]), 4)}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{model.occupancies[i]:6.2f}{model.b_factors[i]:6.2f}"
            f"          {element.upper():>2}  "
        )
    return lines


def _check_positions(model: AtomicModel, positions) -> np.ndarray:
    pos = model.positions if positions is None else np.asarray(positions, dtype=np.float64)
    if pos.shape != (model.n_atoms, 3):
        raise InputError(f"positions must have shape ({model.n_atoms}, 3), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise InputError("positions must be finite to be written to a PDB file")
    return pos


def _write_atomically(path: str | os.PathLike, lines: list[str]) -> None:
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{target}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_pdb(
    model: AtomicModel, path: str | os.PathLike, positions: np.ndarray | None = None
) -> None:
    """Write ``model`` as a PDB file (same atom order, element column filled).

    The file is written to a temporary file in the same folder and then renamed, so it is never
    half-written.

    Arguments:
        model: the atoms (names, residues, elements, B-factors) to write.
        path: the PDB file to write.
        positions: (n, 3) coordinates in Angstrom replacing the model's, if given.
    """
    pos = _check_positions(model, positions)
    _write_atomically(path, [*_atom_lines(model, pos), "END"])


def write_multimodel_pdb(
    model: AtomicModel, positions_list: Sequence[np.ndarray], path: str | os.PathLike
) -> None:
    """Write one MODEL/ENDMDL block per entry of ``positions_list`` (atomically, as :func:`write_pdb`).

    Arguments:
        model: the atoms (names, residues, elements) shared by all models.
        positions_list: one (n, 3) array of coordinates in Angstrom per model.
        path: the PDB file to write.
    """
    if len(positions_list) == 0:
        raise InputError(f"{path}: no positions given to write")
    lines: list[str] = []
    for k, positions in enumerate(positions_list, start=1):
        lines += [f"MODEL     {k:>4}", *_atom_lines(model, _check_positions(model, positions))]
        lines.append("ENDMDL")
    _write_atomically(path, [*lines, "END"])
