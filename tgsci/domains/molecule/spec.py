"""The molecule spec as typed models: the objective's options, [docking] and [resources] of a sweep.

Types and ranges only; what needs the world (a target that exists, a receptor that prepares, a
SMARTS that parses, goal metrics) is checked by ``MoleculeDomain.check``.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from ...spec_models import Names, Numbers, Resources, SpecModel, Strings

AGGREGATIONS = ("dockstring", "vina", "qed")  # how docking and QED make one score (see objective.py)


class LigandLimitsTable(SpecModel):
    """docking.limits: what a molecule may be before Vina sees it."""

    max_heavy_atoms: int = Field(60, ge=1, description="an integer >= 1")
    max_rotatable_bonds: int = Field(15, ge=0, description="an integer >= 0")
    allow_fragments: bool = Field(False, description="true or false")


class DockingTable(SpecModel):
    """[docking]: Vina settings (see simulators.docking.DockingSettings)."""

    exhaustiveness: int = Field(8, ge=1, description="an integer >= 1")
    seed: int = Field(974528263, description="an integer")
    n_poses: int = Field(9, ge=1, description="an integer >= 1")
    ph: float = Field(7.4, ge=0, le=14, description="a number in 0-14")
    writer: Literal["meeko", "openbabel"] = Field("meeko", description='"meeko" or "openbabel"')
    cpu: int = Field(0, ge=0, description="an integer >= 0 (Vina threads; 0 = chosen from the cores)")
    timeout_s: float = Field(900.0, gt=0, description="a number of seconds > 0")
    memory_limit_mb: int = Field(4096, ge=1, description="an integer >= 1")
    limits: Optional[LigandLimitsTable] = Field(default_factory=LigandLimitsTable, description="a table of ligand limits")


class PrepareTable(SpecModel):
    """prepare: how your receptor file is prepared (see simulators.receptor.ReceptorOptions)."""

    chains: Strings = Field([], description='a list of chain ids, e.g. ["A"]')
    keep_waters: bool = Field(False, description="true or false")
    keep_hetero: Strings = Field([], description='a list of residue names, e.g. ["ZN"]')
    altloc: Optional[str] = Field(None, description="an alternate location id")
    delete_residues: Strings = Field([], description='a list of "chain:residue", e.g. ["A:300"]')
    replace_nonstandard: bool = Field(True, description="true or false")
    ph: float = Field(7.4, ge=0, le=14, description="a number in 0-14")
    delete_bad_residues: bool = Field(False, description="true or false")


class Goal(SpecModel):
    metric: str = Field(description="vina, qed, sa, mol_weight, logp, tpsa or vina_<TARGET>")
    op: Literal["<=", ">="] = Field(description='"<=" or ">="')
    value: float = Field(description="a number")


class MoleculeOptions(SpecModel):
    """A molecule objective (``kind = "molecule"``): its target or your receptor, the score, the extras."""

    kind: Literal["molecule"] = Field("molecule", description='"molecule"')
    target: Optional[Union[str, dict[str, float]]] = Field(
        None, description="a target name or a non-empty table of name = weight", min_length=1)
    targets_file: Optional[str] = Field(None, description="a path string (your own targets manifest)")
    receptor: Optional[str] = Field(None, description="a path string (PDB, mmCIF or PDBQT)")
    box_ligand: Optional[str] = Field(None, description="a path string (a ligand file the box surrounds)")
    padding: float = Field(4.0, ge=0, description="a number of Angstrom >= 0")
    box_center: Optional[Numbers] = Field(None, min_length=3, max_length=3, description="three numbers (Angstrom)")
    box_size: Optional[Numbers] = Field(None, min_length=3, max_length=3, description="three numbers (Angstrom)")
    box_residues: Optional[Strings] = Field(None, description='a list of "chain:residue", e.g. ["A:ASP86"]')
    max_box_side: float = Field(40.0, gt=0, description="a number of Angstrom > 0")
    prepare: Optional[PrepareTable] = Field(default_factory=PrepareTable, description="a table of receptor options")
    off_targets: Union[str, Strings] = Field([], description="a list of target names")
    aggregation: Literal[AGGREGATIONS] = Field("dockstring", description=f"one of {', '.join(AGGREGATIONS)}")
    qed_weight: float = Field(10.0, description="a finite number")
    scaffold: Optional[str] = Field(None, description="a SMARTS or SMILES every proposal keeps")
    max_mol_weight: Optional[float] = Field(None, description="a finite number")
    constraints: Strings = Field([], description="a list of strings")
    goals: list[Union[str, Goal]] = Field([], description='a list, e.g. ["vina<=-9", "qed>=0.6"]')
    compare_references: bool = Field(True, description="true or false")
    confirm_seeds: int = Field(3, ge=1, description="an integer >= 1")
    confirm_top: int = Field(3, ge=1, description="an integer >= 1")
    objectives: Optional[Names] = Field(None, description='a list of metric names, e.g. ["vina", "qed", "sa"]')
    reference_point: Optional[dict[str, float]] = Field(None, description="a table, e.g. {vina = 0, qed = 0, sa = 10}")
    protocol: Optional[str] = Field(None, description="a protocol name (tgsci.presets)")
    docking: Optional[DockingTable] = Field(default_factory=DockingTable, description="a table of Vina settings")
    docking_workers: int = Field(0, ge=0, description="an integer >= 0 (0 = chosen from the cores)")
    cache_dir: Optional[str] = Field(None, description="a path string")


class MoleculeResources(Resources):
    """[resources] of a molecule sweep: docking processes per run besides the shared keys."""

    docking_workers: int = Field(0, ge=0, description="an integer >= 0 (0 = chosen from the run's cores)")
