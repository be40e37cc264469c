"""Ligand preparation that matches DOCKSTRING's (dockstring 0.3.4, ``Target.dock``) step by step.

canonical SMILES -> RDKit parse + uncharge -> single fragment, no radicals -> Open Babel
protonation at pH 7.4 -> RDKit AddHs + ETKDG embedding (seed) -> MMFF94 refinement (UFF
fallback) -> PDBQT (Gasteiger charges; Open Babel's writer as dockstring, or meeko).
Open Babel runs in-process (its PDBQT output is byte-identical to the ``obabel`` command).
"""

from __future__ import annotations

from dataclasses import dataclass

from .native import ob

from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402
from rdkit.Chem.MolStandardize.rdMolStandardize import Uncharger  # noqa: E402


from .molecule_checks import (  # noqa: E402,F401  (re-exported for callers of the prep)
    DOCKSTRING_SEED,
    PREP_VERSION,
    LigandError,
    LigandLimits,
    canonical_smiles,
    check_dockable,
)


@dataclass
class PreparedLigand:
    canonical: str
    protonated: str
    mol: Chem.Mol  # 3D, explicit hydrogens, refined
    pdbqt: str


def protonate(smiles: str, ph: float = 7.4) -> str:
    """Open Babel's ``obabel -:SMILES -ismi -ocan -p pH``, in-process."""
    conv = ob.OBConversion()
    conv.SetInAndOutFormats("smi", "can")
    mol = ob.OBMol()
    if not conv.ReadString(mol, smiles):
        raise LigandError("Open Babel cannot read the SMILES")
    mol.AddHydrogens(False, True, ph)
    return conv.WriteString(mol).strip()


def embed(mol: Chem.Mol, seed: int = DOCKSTRING_SEED) -> Chem.Mol:
    """AddHs + ETKDG embedding + MMFF94 (UFF fallback), exactly as dockstring."""
    mol = Chem.AddHs(mol)
    AllChem.EmbedMolecule(mol, randomSeed=seed, maxAttempts=10 * mol.GetNumAtoms())
    if mol.GetNumConformers() == 0:
        raise LigandError("RDKit could not generate a 3D conformation")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        opt = Chem.Mol(mol)
        try:
            AllChem.MMFFSanitizeMolecule(opt)
            status = AllChem.MMFFOptimizeMolecule(opt, mmffVariant="MMFF94", maxIters=1000)
        except Chem.rdchem.KekulizeException:
            opt, status = Chem.Mol(mol), AllChem.UFFOptimizeMolecule(mol, maxIters=1000)
    elif AllChem.UFFHasAllMoleculeParams(mol):
        opt = Chem.Mol(mol)
        status = AllChem.UFFOptimizeMolecule(opt, maxIters=1000)
    else:
        raise LigandError("no force-field parameters for this molecule")
    if status != 0:
        raise LigandError("force-field refinement of the 3D structure did not converge")
    Chem.AssignStereochemistryFrom3D(opt)
    Chem.AssignStereochemistry(opt, cleanIt=True)
    return opt


def pdbqt_openbabel(mol: Chem.Mol) -> str:
    """Open Babel's PDBQT writer with Gasteiger charges (dockstring's conversion)."""
    conv = ob.OBConversion()
    conv.SetInAndOutFormats("mol", "pdbqt")
    obmol = ob.OBMol()
    conv.ReadString(obmol, Chem.MolToMolBlock(mol))
    ob.OBChargeModel.FindType("gasteiger").ComputeCharges(obmol)
    text = conv.WriteString(obmol)
    if not text.strip():
        raise LigandError("Open Babel produced an empty PDBQT")
    return text


def pdbqt_meeko(mol: Chem.Mol) -> str:
    from meeko import MoleculePreparation, PDBQTWriterLegacy

    setups = MoleculePreparation().prepare(mol)
    text, ok, error = PDBQTWriterLegacy.write_string(setups[0])
    if not ok or not text.strip():
        raise LigandError(f"meeko could not write PDBQT: {error}")
    return text


PDBQT_WRITERS = {"openbabel": pdbqt_openbabel, "meeko": pdbqt_meeko}


def prepare_ligand(
    smiles: str,
    ph: float = 7.4,
    seed: int = DOCKSTRING_SEED,
    writer: str = "meeko",
    limits: LigandLimits = LigandLimits(),
) -> PreparedLigand:
    """Everything from SMILES to a dockable PDBQT string."""
    if writer not in PDBQT_WRITERS:
        raise ValueError(f"unknown PDBQT writer {writer!r}; choose {', '.join(PDBQT_WRITERS)}")
    canonical = canonical_smiles(smiles)
    mol = Uncharger().uncharge(Chem.MolFromSmiles(canonical))
    check_dockable(mol, limits)
    protonated = protonate(Chem.MolToSmiles(mol), ph)
    pmol = Chem.MolFromSmiles(protonated)
    if pmol is None:
        raise LigandError(f"RDKit cannot read the protonated SMILES {protonated!r}")
    mol3d = embed(pmol, seed)
    return PreparedLigand(canonical, protonated, mol3d, PDBQT_WRITERS[writer](mol3d))


def pose_to_rdkit(pose_pdbqt: str, template: Chem.Mol) -> Chem.Mol:
    """A docked pose (PDBQT) as an RDKit molecule with the template's bond orders (as dockstring)."""
    conv = ob.OBConversion()
    conv.SetInAndOutFormats("pdbqt", "pdb")
    conv.AddOption("b", ob.OBConversion.INOPTIONS)  # no automatic bonding: keep the torsion tree's
    obmol = ob.OBMol()
    conv.ReadString(obmol, pose_pdbqt)
    raw = Chem.MolFromPDBBlock(conv.WriteString(obmol), removeHs=False)
    if raw is None:
        raise LigandError("cannot read the docked pose")
    raw = Chem.RemoveHs(raw, sanitize=False)
    try:
        return AllChem.AssignBondOrdersFromTemplate(Chem.RemoveHs(template), raw)
    except (ValueError, Chem.AtomValenceException) as exc:
        raise LigandError(f"cannot assign bond orders to the docked pose: {exc}") from None
