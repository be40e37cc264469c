"""Drug-likeness and size descriptors from RDKit: QED, SA score, Lipinski, similarity."""

from __future__ import annotations

import os
import sys
from functools import lru_cache

from rdkit import Chem, DataStructs, RDConfig, rdBase
from rdkit.Chem import QED, Crippen, Descriptors, Lipinski, rdFingerprintGenerator, rdMolDescriptors


@lru_cache(maxsize=1)
def _sascorer():
    """RDKit Contrib's SA score (Ertl & Schuffenhauer 2009), shipped with the rdkit wheel."""
    path = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if path not in sys.path:
        sys.path.append(path)
    import sascorer  # type: ignore

    return sascorer


_MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def mol_from_smiles(smiles: str) -> Chem.Mol:
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"cannot parse SMILES {smiles!r}")
    return mol


def lipinski_violations(mol: Chem.Mol) -> int:
    """Rule of five: MW > 500, cLogP > 5, H-bond donors > 5, acceptors > 10."""
    return sum(
        [
            Descriptors.MolWt(mol) > 500,
            Crippen.MolLogP(mol) > 5,
            Lipinski.NumHDonors(mol) > 5,
            Lipinski.NumHAcceptors(mol) > 10,
        ]
    )


def properties(smiles: str) -> dict:
    """QED (0-1, higher is more drug-like), SA (1 easy - 10 hard), Lipinski violations and sizes."""
    mol = mol_from_smiles(smiles)
    return {
        "qed": float(QED.qed(mol)),
        "sa": float(_sascorer().calculateScore(mol)),
        "lipinski_violations": int(lipinski_violations(mol)),
        "heavy_atoms": int(mol.GetNumHeavyAtoms()),
        "rotatable_bonds": int(rdMolDescriptors.CalcNumRotatableBonds(mol)),
        "mol_weight": float(Descriptors.MolWt(mol)),
        "logp": float(Crippen.MolLogP(mol)),
        "tpsa": float(rdMolDescriptors.CalcTPSA(mol)),
    }


def fingerprint(smiles: str):
    return _MORGAN.GetFingerprint(mol_from_smiles(smiles))


def tanimoto(a: str, b: str) -> float:
    """Tanimoto similarity of Morgan fingerprints (radius 2, 2048 bits)."""
    return float(DataStructs.TanimotoSimilarity(fingerprint(a), fingerprint(b)))


def max_similarity(smiles: str, references: list[str]) -> float:
    if not references:
        return 0.0
    fp = fingerprint(smiles)
    return float(max(DataStructs.BulkTanimotoSimilarity(fp, [fingerprint(r) for r in references])))
