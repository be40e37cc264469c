"""Protein targets: DOCKSTRING's 58, your own target manifests, or a receptor file with a box.

A ``Target`` is data: a name, the receptor PDBQT Vina reads, the search box and reference
drugs. It comes from

- the built-in manifest ``targets/dockstring_targets.toml`` (receptors shipped by dockstring);
- your own manifest (the same schema; ``receptor`` paths relative to that file; a receptor may be
  a ``.pdbqt`` used as is, or a PDB/mmCIF file prepared by ``simulators.receptor``; the box may be
  ``center``/``size``, ``box_ligand`` (+ ``padding``) or ``box_residues``; options of the
  preparation in a ``[targets.NAME.prepare]`` table)::

      [targets.MYKINASE]
      receptor = "structures/mykinase.pdb"
      box_ligand = "structures/cocrystal_ligand.sdf"
      padding = 4.0
      [targets.MYKINASE.prepare]
      chains = ["A"]
      keep_hetero = ["MG"]
      [[targets.MYKINASE.references]]
      name = "imatinib"
      smiles = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(n1)-c1cccnc1"
      id = "DB00619"                # where the drug comes from: a DrugBank or ChEMBL identifier (required)
      status = "approved (FDA)"     # optional

- or ``target_from_files(receptor, box_ligand=...)`` for one receptor file.
"""

from __future__ import annotations

import difflib
import importlib.util
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .receptor import (
    MAX_BOX_SIDE,
    Box,
    ReceptorError,
    ReceptorOptions,
    box_from_ligand,
    box_from_residues,
    check_box,
    file_sha256,
    prepare_receptor,
)

MANIFEST = Path(__file__).resolve().parent.parent / "targets" / "dockstring_targets.toml"
ENTRY_KEYS = ("receptor", "center", "size", "box_ligand", "padding", "box_residues", "max_box_side", "prepare", "references")
PREPARE_KEYS = ("chains", "keep_waters", "keep_hetero", "altloc", "delete_residues", "replace_nonstandard", "ph", "delete_bad_residues")


class UnknownTargetError(ValueError):
    pass


@dataclass(frozen=True)
class ReferenceDrug:
    """A drug to compare designs with; ``id`` names its source record (DrugBank ``DB…`` or ChEMBL ``CHEMBL…``)."""

    name: str
    smiles: str
    id: str
    status: str = ""
    formula: str = ""
    source: str = ""


REFERENCE_KEYS = ("name", "smiles", "id", "status", "formula", "source")


def reference_drugs(entries, where: str) -> tuple[ReferenceDrug, ...]:
    """The checked references of one manifest entry; UnknownTargetError names the entry and what is wrong."""
    if not isinstance(entries, list):
        raise UnknownTargetError(f"{where}.references must be a list of tables ([[targets.NAME.references]])")
    out = []
    for i, r in enumerate(entries):
        label = f"{where}.references[{i}]" + (f" ({r['name']})" if isinstance(r, dict) and isinstance(r.get("name"), str) else "")
        if not isinstance(r, dict):
            raise UnknownTargetError(f"{label}: must be a table with name, smiles and id")
        unknown = sorted(set(r) - set(REFERENCE_KEYS))
        if unknown:
            raise UnknownTargetError(f"{label}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(REFERENCE_KEYS)}")
        missing = [k for k in ("name", "smiles", "id") if not (isinstance(r.get(k), str) and r[k].strip())]
        if missing:
            raise UnknownTargetError(f"{label}: needs {', '.join(missing)} (id: the drug's DrugBank or ChEMBL identifier, "
                                     "e.g. DB00619 or CHEMBL941)")
        if not all(isinstance(v, str) for v in r.values()):
            raise UnknownTargetError(f"{label}: every value must be a string")
        out.append(ReferenceDrug(**r))
    return tuple(out)


@dataclass(frozen=True)
class Target:
    name: str
    receptor: Path  # the PDBQT Vina reads
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    references: tuple[ReferenceDrug, ...] = field(default_factory=tuple)
    source: str = "dockstring"  # "dockstring", or the manifest / receptor file it came from
    pdb: Optional[Path] = None  # the prepared receptor as PDB (receptors tgsci prepared)
    preparation: Optional[dict] = field(default=None, hash=False, compare=False)  # the receptor.json record plus the box

    @property
    def receptor_path(self) -> Path:
        return self.receptor

    def fingerprint(self) -> dict:
        """What a docking score depends on besides the ligand: receptor content and box."""
        return {"name": self.name, "receptor_sha256": file_sha256(self.receptor), "center": list(self.center), "size": list(self.size)}

    def to_dict(self) -> dict:
        """JSON-able, for a docking worker process."""
        return {"name": self.name, "receptor": str(self.receptor), "center": list(self.center), "size": list(self.size)}

    @classmethod
    def from_dict(cls, data: dict) -> "Target":
        return cls(data["name"], Path(data["receptor"]), tuple(data["center"]), tuple(data["size"]))


def dockstring_targets_dir() -> Path:
    spec = importlib.util.find_spec("dockstring")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dockstring package (receptor files) is not installed: pip install dockstring==0.3.4")
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "targets"


@lru_cache(maxsize=1)
def _builtin() -> dict[str, Target]:
    with open(MANIFEST, "rb") as handle:
        data = tomllib.load(handle)
    base = dockstring_targets_dir()
    return {name: Target(name, base / e["receptor"], tuple(e["center"]), tuple(e["size"]),
                         reference_drugs(e.get("references", []), f"{MANIFEST.name}: targets.{name}"))
            for name, e in data["targets"].items()}


def load_manifest(path: Optional[str | Path] = None) -> dict[str, dict]:
    """The entries of a target manifest (default: DOCKSTRING's), checked, with paths made absolute.

    Entries are not prepared here (see ``get_target``); ValueError says what is wrong and where.
    """
    if path is None:
        return {name: {"receptor": str(t.receptor), "center": list(t.center), "size": list(t.size),
                       "references": [r.__dict__ for r in t.references]} for name, t in _builtin().items()}
    path = Path(path).expanduser().resolve()
    return _read_manifest(path, path.stat().st_mtime_ns if path.is_file() else 0)


@lru_cache(maxsize=16)
def _read_manifest(path: Path, _mtime: int) -> dict[str, dict]:
    if not path.is_file():
        raise UnknownTargetError(f"targets file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UnknownTargetError(f"targets file {path}: {exc}") from None
    entries = data.get("targets")
    if not isinstance(entries, dict) or not entries:
        raise UnknownTargetError(f"targets file {path} has no [targets.NAME] tables (the schema of targets/dockstring_targets.toml)")
    out = {}
    for name, entry in entries.items():
        where = f"{path.name}, [targets.{name}]"
        if not isinstance(entry, dict) or "receptor" not in entry:
            raise UnknownTargetError(f"{where}: needs receptor = \"file.pdbqt\" (or .pdb, .cif)")
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise UnknownTargetError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(ENTRY_KEYS)}")
        unknown = sorted(set(entry.get("prepare", {})) - set(PREPARE_KEYS))
        if unknown:
            raise UnknownTargetError(f"{where}.prepare: unknown key(s) {', '.join(unknown)}; valid: {', '.join(PREPARE_KEYS)}")
        e = dict(entry)
        for key in ("receptor", "box_ligand"):
            if key in e:
                e[key] = str((path.parent / e[key]).resolve())
        e["references"] = [r.__dict__ for r in reference_drugs(e.get("references", []), where)]
        out[name] = e
    return out


def target_names(targets_file: Optional[str | Path] = None) -> list[str]:
    return sorted(load_manifest(targets_file)) if targets_file else sorted(_builtin())


def get_target(name: str, targets_file: Optional[str | Path] = None, cache_dir: Optional[Path] = None) -> Target:
    """The target ``name`` of a targets file (or DOCKSTRING's, case-insensitive); the error lists valid names.

    A receptor given as PDB/mmCIF is prepared here (cached by content)."""
    if targets_file:
        entries = load_manifest(targets_file)
        if name in entries:
            return target_from_entry(name, entries[name], str(Path(targets_file).expanduser().resolve()), cache_dir)
        valid = sorted(entries)
    else:
        targets = _builtin()
        key = str(name).strip().upper()
        if key in targets:
            return targets[key]
        valid = sorted(targets)
    close = difflib.get_close_matches(str(name), valid, n=3) or difflib.get_close_matches(str(name).upper(), valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    where = f" in {targets_file}" if targets_file else ""
    raise UnknownTargetError(f"unknown target {name!r}{where}.{hint} Valid targets: {', '.join(valid)}")


def target_from_entry(name: str, entry: dict, source: str, cache_dir: Optional[Path] = None) -> Target:
    prepare = entry.get("prepare", {})
    options = ReceptorOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in prepare.items()})
    return target_from_files(
        entry["receptor"], name=name, box_center=entry.get("center"), box_size=entry.get("size"),
        box_ligand=entry.get("box_ligand"), box_residues=entry.get("box_residues"), padding=entry.get("padding", 4.0),
        max_box_side=entry.get("max_box_side", MAX_BOX_SIDE), options=options,
        references=tuple(ReferenceDrug(**r) for r in entry.get("references", [])), source=source, cache_dir=cache_dir,
    )


def target_from_files(
    receptor: str | Path,
    *,
    name: Optional[str] = None,
    box_ligand: Optional[str | Path] = None,
    padding: float = 4.0,
    box_center=None,
    box_size=None,
    box_residues=None,
    options: ReceptorOptions = ReceptorOptions(),
    max_box_side: float = MAX_BOX_SIDE,
    references: tuple = (),
    source: Optional[str] = None,
    cache_dir: Optional[Path] = None,
) -> Target:
    """A Target from a receptor file (PDB/mmCIF prepared here, cached; a PDBQT used as is) and one box:
    a ligand file (``box_ligand`` + ``padding``), ``box_center`` + ``box_size``, or ``box_residues``."""
    receptor = Path(receptor).expanduser().resolve()
    ways = [box_ligand is not None, box_center is not None or box_size is not None, bool(box_residues)]
    if sum(ways) != 1:
        raise ReceptorError("give exactly one box: a ligand file (box_ligand, with padding), box_center with box_size, "
                            "or box_residues (e.g. A:ASP86,A:LYS33)")
    if receptor.suffix.lower() == ".pdbqt":
        if not receptor.is_file():
            raise ReceptorError(f"receptor file {receptor} does not exist")
        pdbqt, pdb, record = receptor, None, {"source": str(receptor), "sha256": file_sha256(receptor), "prepared": "used as given (PDBQT)"}
    else:
        prepared = prepare_receptor(receptor, options, cache_dir)
        pdbqt, pdb, record = prepared.pdbqt, prepared.pdb, dict(prepared.record)
    box = _box(box_ligand, padding, box_center, box_size, box_residues, pdb or pdbqt)
    inside = check_box(box, pdbqt, max_box_side)
    record["box"] = {"center": list(box.center), "size": list(box.size), "source": box.source, "receptor_atoms_inside": inside,
                     "notes": list(box.notes)}
    return Target(name or receptor.stem, pdbqt, box.center, box.size, tuple(references), source or str(receptor), pdb, record)


def _box(ligand, padding, center, size, residues, structure: Path) -> Box:
    if ligand is not None:
        return box_from_ligand(ligand, padding)
    if residues:
        specs = residues.split(",") if isinstance(residues, str) else list(residues)
        return box_from_residues(structure, [s.strip() for s in specs if s.strip()], padding)
    if center is None or size is None:
        raise ReceptorError("box_center and box_size go together (3 numbers each, Angstrom)")
    try:
        c, s = tuple(float(v) for v in center), tuple(float(v) for v in size)
    except (TypeError, ValueError):
        raise ReceptorError(f"box center {center!r} and size {size!r} must be 3 numbers each") from None
    if len(c) != 3 or len(s) != 3:
        raise ReceptorError(f"box center {center!r} and size {size!r} must be 3 numbers each")
    return Box(c, s, "given center and size")

