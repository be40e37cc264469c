"""Molecule checks that need RDKit only: canonical SMILES and the limits that keep docking safe.

Kept apart from ligand preparation so the calling process never loads Open Babel or Vina
(docking runs in worker processes), whatever the user imported before.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdkit import Chem, rdBase
from rdkit.Chem import Descriptors, rdMolDescriptors

DOCKSTRING_SEED = 974528263  # dockstring's default seed for embedding and docking
PREP_VERSION = "dockstring-0.3.4-match/1"  # bump when the preparation changes: part of cache keys
# Atom types Vina and Open Babel's PDBQT writer handle.
DOCKABLE_ELEMENTS = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})
# Longest SMILES handed to RDKit: a drug-like molecule is well under 200 characters, and RDKit's
# parse time and memory grow with the text (an LLM reply can run to its token limit).
MAX_SMILES_CHARS = 400


class LigandError(ValueError):
    """A molecule that cannot or must not be docked; the message says why."""


@dataclass(frozen=True)
class LigandLimits:
    """Guards that keep Vina and RDKit from exhausting memory or time (see README)."""

    max_heavy_atoms: int = 60
    max_rotatable_bonds: int = 15
    allow_fragments: bool = False


class CanonicalSmiles(str):
    """A SMILES that ``canonical_smiles`` returned: given to it again, it is returned as is, so a value
    checked once (by the objective) is not parsed again by the docking simulator and ligand preparation."""

    __slots__ = ()


def canonical_smiles(smiles: str) -> str:
    """RDKit canonical isomeric SMILES; LigandError for empty or unparseable input."""
    if isinstance(smiles, CanonicalSmiles):
        return smiles
    if smiles is None or not str(smiles).strip():
        raise LigandError("empty SMILES")
    text = str(smiles).strip()
    if len(text) > MAX_SMILES_CHARS:
        raise LigandError(f"the SMILES is {len(text)} characters long; at most {MAX_SMILES_CHARS} (a drug-like molecule needs far fewer)")
    if any(c.isspace() for c in text):
        raise LigandError("SMILES must not contain spaces")
    with rdBase.BlockLogs():  # the reason goes into the error, not to stderr
        mol = Chem.MolFromSmiles(text)
    if mol is None:
        raise LigandError(f"RDKit cannot parse {text!r} (check ring closures, brackets and valences)")
    if mol.GetNumAtoms() == 0:
        raise LigandError("the molecule has no atoms")
    return CanonicalSmiles(Chem.MolToSmiles(mol, isomericSmiles=True))


def check_dockable(mol: Chem.Mol, limits: LigandLimits = LigandLimits()) -> None:
    """Reject what would crash or stall docking, before any 3D work."""
    heavy = mol.GetNumHeavyAtoms()
    if heavy == 0:
        raise LigandError("the molecule has no heavy atoms")
    if heavy > limits.max_heavy_atoms:
        raise LigandError(f"{heavy} heavy atoms is more than the limit of {limits.max_heavy_atoms}")
    fragments = len(Chem.GetMolFrags(mol))
    if fragments > 1 and not limits.allow_fragments:
        raise LigandError(f"{fragments} disconnected fragments; give a single molecule (no salts or '.')")
    if Descriptors.NumRadicalElectrons(mol):
        raise LigandError("the molecule has radicals")
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms()} - DOCKABLE_ELEMENTS)
    if bad:
        raise LigandError(f"element(s) {', '.join(bad)} cannot be docked with Vina")
    rot = rdMolDescriptors.CalcNumRotatableBonds(mol)
    if rot > limits.max_rotatable_bonds:
        raise LigandError(f"{rot} rotatable bonds is more than the limit of {limits.max_rotatable_bonds}")


