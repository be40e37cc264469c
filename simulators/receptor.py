"""Your own receptor: a PDB or mmCIF file in, a Vina-ready PDBQT out, every step recorded and cached.

The steps, each done by the library made for it:

1. **gemmi** reads the file (PDB or mmCIF) and cleans it: the first model; the chains asked for;
   waters, ions and ligands removed unless kept by option; one alternate location per residue
   (the highest occupancy unless one is asked for); residues deleted by option.
2. **PDBFixer** (OpenMM) replaces modified residues by their standard parents (MSE -> MET, from
   its own table), adds missing heavy atoms and adds hydrogens at pH 7.4. It never goes to the
   network: residues it does not know get no hydrogens (and are named in the record).
3. **meeko** types the residues against its templates and writes the receptor PDBQT (and the
   prepared receptor as PDB, for PyMOL/ChimeraX). Residues it cannot template are named in the
   error with the option that deletes them.

The result is cached by the sha256 of the input file, the options and the library versions:
the same file and options are never prepared twice; one changed byte prepares again.
``receptor.json`` beside the files records the source hash, the options, what was removed,
replaced and added. A ``.pdbqt`` receptor is used as it is.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .cache import default_cache_dir, private_dir
from .files import read_json, write_json_atomic, write_text_atomic

PREP_FORMAT = 1  # bump when the preparation changes: part of the cache key
PREPARATIONS: Counter = Counter()  # receptors prepared (not loaded from the cache) by this process, per file name
MAX_BOX_SIDE = 40.0  # Angstrom; Vina's map and search cost grows with the box volume


class ReceptorError(ValueError):
    """A receptor or box that cannot be used; the message says why and what to change."""


@dataclass(frozen=True)
class ReceptorOptions:
    """How a receptor file is prepared (all part of the cache key)."""

    chains: tuple[str, ...] = ()  # empty: every chain
    keep_waters: bool = False
    keep_hetero: tuple[str, ...] = ()  # residue names of ions or cofactors to keep, e.g. ("ZN",)
    altloc: Optional[str] = None  # None: per residue, the alternate location with the highest occupancy
    delete_residues: tuple[str, ...] = ()  # "A:123" (chain:number), deleted before anything else
    replace_nonstandard: bool = True  # modified residues -> standard parents (PDBFixer's table)
    ph: float = 7.4
    delete_bad_residues: bool = False  # delete the residues meeko cannot type (named in the record) instead of failing

    def __post_init__(self) -> None:
        for spec in self.delete_residues:
            _residue_spec(spec)
        if not 0.0 <= float(self.ph) <= 14.0:
            raise ReceptorError(f"pH {self.ph} is outside 0-14")


@dataclass
class PreparedReceptor:
    pdbqt: Path  # what Vina reads
    pdb: Path  # the prepared receptor with hydrogens, for viewers
    record: dict  # receptor.json: source, sha256, options, removed, replaced, added
    cached: bool = False


@dataclass(frozen=True)
class Box:
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    source: str = ""  # how it was made, for the record
    notes: tuple[str, ...] = field(default_factory=tuple)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"format": PREP_FORMAT}
    for name in ("gemmi", "pdbfixer", "openmm", "meeko", "rdkit"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------------- preparation
def prepare_receptor(path: str | Path, options: ReceptorOptions = ReceptorOptions(), cache_dir: Optional[Path] = None) -> PreparedReceptor:
    """The prepared receptor of ``path`` (from the cache when the same file and options were prepared)."""
    from filelock import FileLock

    path = Path(path).expanduser()
    _readable(path, "receptor")
    digest = file_sha256(path)
    key_fields = {"sha256": digest, "options": asdict(options), "versions": tool_versions()}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    directory = private_dir(Path(cache_dir or default_cache_dir()) / "receptors" / key[:24])
    with FileLock(str(directory / ".lock")):  # two processes preparing the same receptor: one does it
        if (directory / "receptor.json").is_file() and (directory / "receptor.pdbqt").is_file():
            return PreparedReceptor(directory / "receptor.pdbqt", directory / "receptor.pdb", read_json(directory / "receptor.json"), cached=True)
        pdbqt, pdb, record = prepare_isolated(path, options)
        record.update(source=str(path.resolve()), sha256=digest, options=asdict(options), versions=key_fields["versions"])
        record = json.loads(json.dumps(record))  # as it reads back from receptor.json (lists, not tuples)
        write_text_atomic(directory / "receptor.pdbqt", pdbqt, private=True)
        write_text_atomic(directory / "receptor.pdb", pdb, private=True)
        write_json_atomic(directory / "receptor.json", record, private=True)  # last: its presence means the entry is complete
        PREPARATIONS[path.name] += 1
    return PreparedReceptor(directory / "receptor.pdbqt", directory / "receptor.pdb", record)


PREP_TIMEOUT_S = 900.0  # PDBFixer on a large, gappy structure takes minutes; past this it is stuck
PREP_MEMORY_MB = 8192  # the child's address-space cap: PDBFixer + OpenMM on the largest receptor allowed (100,000 atoms) stay below it
_RESULT = "TGSCI-RECEPTOR-RESULT "


def prepare_isolated(path: Path, options: ReceptorOptions, timeout_s: float = PREP_TIMEOUT_S) -> tuple[str, str, dict]:
    """``_prepare`` in a child process (``python -P -m simulators.receptor``): a file from elsewhere
    that makes PDBFixer or meeko hang or crash costs its own process, killed after ``timeout_s``,
    never the caller's. ReceptorError carries the child's reason."""
    import subprocess

    from .child import child_command

    argv, env = child_command("simulators.receptor", str(path), json.dumps(asdict(options)))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise ReceptorError(f"preparing {path.name} took longer than {timeout_s:.0f} s and was stopped; keep only the "
                            f"chains around the pocket (--chains) or prepare the PDBQT yourself") from None
    answer = next((line[len(_RESULT):] for line in reversed(done.stdout.splitlines()) if line.startswith(_RESULT)), None)
    if answer is None:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        raise ReceptorError(f"preparing {path.name} failed (exit {done.returncode}): {' | '.join(tail) or 'no message'}")
    kind, *payload = json.loads(answer)
    if kind != "ok":
        raise ReceptorError(payload[0])
    return payload[0], payload[1], payload[2]


def _prepare_main(argv: list[str]) -> None:
    """The child of ``prepare_isolated``: one JSON line, ["ok", pdbqt, pdb, record] or ["error", why]."""
    from .child import limit_memory

    limit_memory(PREP_MEMORY_MB)
    fields = json.loads(argv[1])
    options = ReceptorOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    try:
        answer = ["ok", *_prepare(Path(argv[0]), options)]
    except ReceptorError as exc:
        answer = ["error", str(exc)]
    except Exception as exc:  # noqa: BLE001 - the parent reports it as the file's problem
        answer = ["error", f"preparing {Path(argv[0]).name} failed: {type(exc).__name__}: {exc}"]
    print(_RESULT + json.dumps(answer, default=str), flush=True)


def _prepare(path: Path, options: ReceptorOptions) -> tuple[str, str, dict]:
    structure, record = clean_structure(path, options)
    with_h, added = _add_hydrogens(structure.make_pdb_string(), options, record)
    record["added"] = added
    pdbqt, pdb, record["deleted_untypable"] = _meeko(with_h, options.delete_bad_residues)
    return pdbqt, pdb, record


# Hydrogen placement (PDBFixer/OpenMM) and meeko's typing run in a child process with a timeout
# (prepare_isolated); a receptor file from elsewhere is also capped before them. A docking receptor is a few thousand residues at most;
# a whole ribosome or a virus capsid is not one (select the chains around the pocket).
MAX_RECEPTOR_BYTES = 200 * 2**20
MAX_RECEPTOR_ATOMS = 100_000


def read_structure(path: Path):
    import gemmi

    _readable(path, "receptor")
    size = path.stat().st_size
    if size > MAX_RECEPTOR_BYTES:
        raise ReceptorError(f"{path} is {size / 2**20:.0f} MB; a receptor file of at most {MAX_RECEPTOR_BYTES // 2**20} MB is read")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise ReceptorError(f"cannot read {path} as PDB or mmCIF: {exc}") from None
    if len(structure) == 0 or not any(len(res) for chain in structure[0] for res in chain):
        raise ReceptorError(f"{path} holds no atoms")
    return structure


def clean_structure(path: Path, options: ReceptorOptions):
    """gemmi: first model, chains, waters/hetero groups, one altloc, deleted residues; with the record."""
    import gemmi

    structure = read_structure(path)
    record: dict = {"models_in_file": len(structure), "removed": {"chains": [], "waters": 0, "hetero": {}, "residues": [], "altloc_atoms": 0}}
    while len(structure) > 1:
        del structure[1]
    model = structure[0]
    found = [c.name for c in model]
    if options.chains:
        missing = [c for c in options.chains if c not in found]
        if missing:
            raise ReceptorError(f"chain(s) {', '.join(missing)} not in {path.name}; chains found: {', '.join(found) or '(unnamed)'}")
        for name in [c.name for c in model if c.name not in options.chains]:
            record["removed"]["chains"].append(name)
            model.remove_chain(name)
    atoms = sum(len(res) for chain in model for res in chain)
    if atoms > MAX_RECEPTOR_ATOMS:
        raise ReceptorError(f"{path.name} has {atoms} atoms in the chains kept (at most {MAX_RECEPTOR_ATOMS}); "
                            f"keep only the chains around the pocket (--chains)")

    def is_amino(res) -> bool:
        info = gemmi.find_tabulated_residue(res.name)
        return bool(info and info.is_amino_acid())

    selected = [res for chain in model for res in chain]
    if selected and not any(is_amino(res) for res in selected):
        names = ", ".join(sorted({res.name for res in selected})[:10])
        raise ReceptorError(f"{path.name} has no amino-acid residues (found {names}): it is not a protein")
    wanted = {_residue_spec(s) for s in options.delete_residues}
    seen = set()
    removed = record["removed"]
    for chain in model:
        for i in range(len(chain) - 1, -1, -1):
            res = chain[i]
            ident = (chain.name, str(res.seqid.num) + (res.seqid.icode.strip() if res.seqid.icode != " " else ""))
            if ident in wanted:
                seen.add(ident)
                removed["residues"].append(f"{chain.name}:{res.name}{ident[1]}")
                del chain[i]
            elif res.is_water():
                if not options.keep_waters:
                    removed["waters"] += 1
                    del chain[i]
            elif not is_amino(res) and res.name not in options.keep_hetero:
                removed["hetero"][res.name] = removed["hetero"].get(res.name, 0) + 1
                del chain[i]
            else:
                removed["altloc_atoms"] += _one_altloc(res, options.altloc)
    unknown = sorted(f"{c}:{n}" for c, n in wanted - seen)
    if unknown:
        raise ReceptorError(f"residue(s) {', '.join(unknown)} to delete are not in {path.name}")
    structure.remove_empty_chains()
    residues = [res for chain in model for res in chain]
    if not any(is_amino(res) for res in residues):
        raise ReceptorError(f"no protein residue left in {path.name} after the selection (chains {', '.join(options.chains) or 'all'}, "
                            f"{len(wanted)} deleted; waters, ions and ligands removed unless kept)")
    record["residues"] = len(residues)
    record["chains"] = [c.name for c in model]
    structure.setup_entities()
    return structure, record


def _one_altloc(res, wanted: Optional[str]) -> int:
    """Keep one alternate location of ``res`` (``wanted``, else the highest mean occupancy); atoms removed."""
    locs: dict[str, list[float]] = {}
    for atom in res:
        if atom.altloc != "\0":
            locs.setdefault(atom.altloc, []).append(atom.occ)
    if not locs:
        return 0
    keep = wanted if wanted in locs else max(locs, key=lambda a: (sum(locs[a]) / len(locs[a]), -ord(a)))
    removed = 0
    for i in range(len(res) - 1, -1, -1):
        atom = res[i]
        if atom.altloc == "\0":
            continue
        if atom.altloc != keep:
            del res[i]
            removed += 1
        else:
            atom.altloc = "\0"
            atom.occ = 1.0
    return removed


def _add_hydrogens(pdb: str, options: ReceptorOptions, record: dict) -> tuple[str, dict]:
    """PDBFixer: standard residues for modified ones, missing heavy atoms, hydrogens at the pH."""
    from openmm.app import PDBFile
    from pdbfixer import PDBFixer
    from pdbfixer.pdbfixer import substitutions

    try:
        fixer = PDBFixer(pdbfile=io.StringIO(pdb))
        known = set(substitutions) | set(_standard_residues())
        offline = {r.name for r in fixer.topology.residues() if r.name not in known}
        fixer._ccdCache.update({name: None for name in offline})  # never download definitions
        fixer.findMissingResidues()
        gaps = sum(len(v) for v in fixer.missingResidues.values())
        fixer.missingResidues = {}  # gaps are reported, not modelled: a loop built here would be a guess
        replaced = []
        if options.replace_nonstandard:
            fixer.findNonstandardResidues()
            replaced = [f"{r.chain.id}:{r.name}{r.id}->{new}" for r, new in fixer.nonstandardResidues]
            fixer.replaceNonstandardResidues()
        fixer.findMissingAtoms()
        heavy = sum(len(v) for v in fixer.missingAtoms.values()) + sum(len(v) for v in fixer.missingTerminals.values())
        fixer.addMissingAtoms()
        record["terminal_oxygens_dropped"] = _drop_crowded_terminal_oxygens(fixer)
        before = sum(1 for a in fixer.topology.atoms() if a.element is not None and a.element.symbol == "H")
        fixer.addMissingHydrogens(options.ph)
        after = sum(1 for a in fixer.topology.atoms() if a.element is not None and a.element.symbol == "H")
        out = io.StringIO()
        PDBFile.writeFile(fixer.topology, fixer.positions, out, keepIds=True)
    except Exception as exc:  # noqa: BLE001 - any PDBFixer/OpenMM failure is the receptor's
        raise ReceptorError(f"hydrogens could not be added (PDBFixer at pH {options.ph}): {type(exc).__name__}: {exc}") from None
    record["replaced_nonstandard"] = replaced
    record["no_hydrogen_template"] = sorted(offline - set(substitutions) - {"HOH"})
    return out.getvalue(), {"hydrogens": after - before, "heavy_atoms": heavy, "missing_residues_not_modelled": gaps, "ph": options.ph}


def _drop_crowded_terminal_oxygens(fixer) -> list[str]:
    """A C-terminal OXT that PDBFixer placed within bonding distance of CA (seen where the terminus'
    geometry is strained) would be read as a bond and break typing: remove it and say so."""
    from openmm import unit
    from openmm.app import Modeller

    crowded, names = [], []
    positions = fixer.positions.value_in_unit(unit.angstrom)
    for res in fixer.topology.residues():
        atoms = {a.name: a for a in res.atoms()}
        if "OXT" in atoms and "CA" in atoms:
            a, b = positions[atoms["OXT"].index], positions[atoms["CA"].index]
            if sum((a[i] - b[i]) ** 2 for i in range(3)) ** 0.5 < 2.0:
                crowded.append(atoms["OXT"])
                names.append(f"{res.chain.id}:{res.name}{res.id}")
    if crowded:
        modeller = Modeller(fixer.topology, fixer.positions)
        modeller.delete(crowded)
        fixer.topology, fixer.positions = modeller.topology, modeller.positions
    return names


def _standard_residues() -> set[str]:
    from openmm.app import Modeller

    Modeller._loadStandardHydrogenDefinitions()
    return set(Modeller._residueHydrogens)


def _meeko(pdb: str, delete_bad: bool = False) -> tuple[str, str, list[str]]:
    """meeko: residue templates -> receptor PDBQT, the prepared PDB, and the residues it deleted (``delete_bad``)."""
    from meeko import MoleculePreparation, PDBQTWriterLegacy, Polymer, ResidueChemTemplates
    from meeko.polymer import PolymerCreationError
    from rdkit import rdBase

    templates = ResidueChemTemplates.create_from_defaults()
    hint = (" A residue fails when it is not a standard one, or when its atoms clash with a neighbour's (closer"
            " than a bond). Delete such residues with delete_residues (CLI: --delete-residues A:123,B:45), or all of"
            " them with delete_bad_residues (CLI: --delete-bad-residues), or keep fewer hetero groups.")
    quiet = logging.getLogger("meeko")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its template-matching warnings: the reason goes into the error or the record
    try:
        with rdBase.BlockLogs():
            polymer = Polymer.from_pdb_string(pdb, templates, MoleculePreparation(), allow_bad_res=delete_bad)
    except PolymerCreationError as exc:  # its recommendations name mk_prepare_receptor's flags, not ours: left out
        raise ReceptorError(f"meeko cannot type some residues: {exc.error.strip().splitlines()[0].lstrip('- ')}.{hint}") from None
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ReceptorError(f"meeko cannot type a residue: {exc}.{hint}") from None
    finally:
        quiet.setLevel(level)
    deleted = sorted(polymer.get_ignored_monomers())
    rigid, _ = PDBQTWriterLegacy.write_from_polymer(polymer)
    if not rigid.strip():
        raise ReceptorError("meeko wrote an empty receptor PDBQT")
    return rigid, polymer.to_pdb(), deleted


# ---------------------------------------------------------------------------- boxes
def box_from_ligand(path: str | Path, padding: float = 4.0) -> Box:
    """The box enveloping a ligand (SDF, MOL, MOL2, PDB or PDBQT) with ``padding`` Angstrom on each side."""
    from meeko import gridbox

    path = Path(path).expanduser()
    mol, notes = read_ligand(path)
    center, size = gridbox.calc_box(mol.GetConformer().GetPositions(), padding)
    return Box(_triple(center), _triple(size), f"enveloping {path.name} + {padding:g} A padding", tuple(notes))


def read_ligand(path: Path):
    """(RDKit molecule with 3D coordinates, notes); ReceptorError when the file holds none."""
    from rdkit import Chem, rdBase

    _readable(path, "ligand")
    suffix = path.suffix.lower()
    notes = []
    if not path.read_bytes().strip():
        raise ReceptorError(f"no molecule with coordinates in the ligand file {path.name} (it is empty)")
    with rdBase.BlockLogs():
        if suffix == ".sdf":
            mols = [m for m in Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False) if m is not None]
            if len(mols) > 1:
                name = mols[0].GetProp("_Name") if mols[0].HasProp("_Name") else ""
                notes.append(f"{path.name} holds {len(mols)} molecules; the first ({name or 'unnamed'}) defines the box")
            mol = mols[0] if mols else None
        elif suffix == ".mol":
            mol = Chem.MolFromMolFile(str(path), removeHs=False, sanitize=False)
        elif suffix == ".mol2":
            mol = Chem.MolFromMol2File(str(path), removeHs=False, sanitize=False)
        elif suffix == ".pdb":
            mol = Chem.MolFromPDBFile(str(path), removeHs=False, sanitize=False)
        elif suffix == ".pdbqt":
            from meeko import PDBQTMolecule, RDKitMolCreate

            try:
                mols = RDKitMolCreate.from_pdbqt_mol(PDBQTMolecule.from_file(str(path), skip_typing=True))
            except Exception as exc:  # noqa: BLE001
                raise ReceptorError(f"cannot read the ligand {path.name} as PDBQT: {exc}") from None
            mol = mols[0] if mols else None
        else:
            raise ReceptorError(f"ligand file {path.name}: use SDF, MOL, MOL2, PDB or PDBQT")
    if mol is None or mol.GetNumAtoms() == 0 or mol.GetNumConformers() == 0:
        raise ReceptorError(f"no molecule with coordinates in the ligand file {path.name}")
    return mol, notes


def box_from_residues(receptor: str | Path, specs: list[str], padding: float = 4.0) -> Box:
    """The box enveloping the atoms of residues ``["A:86", "A:LYS33", ...]`` of a receptor (PDB, mmCIF or PDBQT)."""
    import gemmi
    from meeko import gridbox

    receptor = Path(receptor)
    if receptor.suffix.lower() == ".pdbqt":
        structure = gemmi.read_pdb_string(pdbqt_to_pdb(receptor.read_text()))
    else:
        structure = read_structure(receptor)
    wanted = {_residue_spec(s) for s in specs}
    coords, found = [], set()
    for chain in structure[0]:
        for res in chain:
            ident = (chain.name, str(res.seqid.num) + (res.seqid.icode.strip() if res.seqid.icode != " " else ""))
            if ident in wanted:
                found.add(ident)
                coords += [(a.pos.x, a.pos.y, a.pos.z) for a in res if a.element != gemmi.Element("H")]
    missing = sorted(f"{c}:{n}" for c, n in wanted - found)
    if missing:
        raise ReceptorError(f"box residue(s) {', '.join(missing)} are not in the receptor")
    center, size = gridbox.calc_box(coords, padding)
    return Box(_triple(center), _triple(size), f"enveloping residues {', '.join(specs)} + {padding:g} A padding")


def check_box(box: Box, receptor_pdbqt: str | Path, max_side: float = MAX_BOX_SIDE) -> int:
    """Receptor atoms inside the box; ReceptorError for an empty or oversized box."""
    if any(not (s > 0) for s in box.size):
        raise ReceptorError(f"box size {list(box.size)} must be positive on every side")
    if max(box.size) > max_side:
        raise ReceptorError(
            f"the box is {max(box.size):.1f} A on its longest side, more than {max_side:g} A: Vina's maps and search "
            f"grow with the box volume. Use a smaller padding or a box around the pocket, or raise the limit "
            f"(max_box_side, CLI --max-box-side)")
    inside = 0
    for line in Path(receptor_pdbqt).read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            xyz = (float(line[30:38]), float(line[38:46]), float(line[46:54]))
            inside += all(abs(x - c) <= s / 2 for x, c, s in zip(xyz, box.center, box.size))
    if inside == 0:
        raise ReceptorError(f"the box (center {[round(c, 2) for c in box.center]}, size {[round(s, 2) for s in box.size]}) "
                            f"contains no receptor atom: is it in the receptor's frame of coordinates?")
    return inside


AD_ELEMENTS = {"A": "C", "OA": "O", "NA": "N", "SA": "S", "HD": "H", "HS": "H", "NS": "N", "OS": "O", "G0": "C", "G1": "C", "CG0": "C", "CG1": "C"}


def pdbqt_to_pdb(text: str) -> str:
    """A receptor PDBQT as PDB (for viewers and residue lookups): the AutoDock atom type becomes the element."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("ATOM", "HETATM")):
            ad_type = line[77:79].strip()
            element = AD_ELEMENTS.get(ad_type, ad_type[:1] if ad_type[:1] in "CNOSHP" and len(ad_type) > 1 else ad_type)
            lines.append(line[:66].ljust(76) + element.rjust(2))
        elif line.startswith(("TER", "END", "MODEL", "ENDMDL")):
            lines.append(line)
    return "\n".join(lines) + "\nEND\n"


def _triple(values) -> tuple[float, float, float]:
    x, y, z = (round(float(v), 3) for v in values)
    return (x, y, z)


def _residue_spec(spec: str) -> tuple[str, str]:
    """"A:123", "A:ASP86" or "A:86B" -> ("A", "86"/"86B"); ReceptorError otherwise."""
    chain, sep, rest = str(spec).strip().partition(":")
    number = rest.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") if rest[:1].isalpha() and len(rest) > 1 else rest
    if not sep or not number or not number.lstrip("-")[:1].isdigit():
        raise ReceptorError(f"residue {spec!r}: write chain:number, e.g. A:86 or A:ASP86")
    return chain, number


def _readable(path: Path, what: str) -> None:
    if not path.is_file():
        raise ReceptorError(f"{what} file {path} does not exist")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ReceptorError(f"{what} file {path} cannot be read: {exc.strerror or exc}") from None


if __name__ == "__main__":
    import sys

    _prepare_main(sys.argv[1:])
