"""Receptor files as a chemist gets them, derived from what ships (no download possible here).

``rcsb_like_pdb``: a DOCKSTRING receptor PDBQT written back the way RCSB delivers a structure:
heavy atoms only, PDB format, chain A. ``noisy_pdb`` adds what real files carry: waters in the
pocket, an alternate location on a side chain, a second chain, a zinc ion and a
selenomethionine (MSE). Used by tests/test_receptor.py and benchmarks/receptor_preparation.py.
"""

from __future__ import annotations

import gemmi

from simulators.receptor import pdbqt_to_pdb
from simulators.targets import get_target


def rcsb_like_structure(target: str) -> gemmi.Structure:
    structure = gemmi.read_pdb_string(pdbqt_to_pdb(get_target(target).receptor.read_text()))
    structure.remove_hydrogens()
    for chain in structure[0]:
        chain.name = "A"
    structure.setup_entities()
    return structure


def rcsb_like_pdb(target: str) -> str:
    return rcsb_like_structure(target).make_pdb_string()


def _rotate(p: gemmi.Position, a: gemmi.Position, b: gemmi.Position, angle: float) -> gemmi.Position:
    """``p`` rotated by ``angle`` (radians) about the axis a -> b (Rodrigues)."""
    import math

    k = [b.x - a.x, b.y - a.y, b.z - a.z]
    n = math.sqrt(sum(c * c for c in k))
    k = [c / n for c in k]
    v = [p.x - b.x, p.y - b.y, p.z - b.z]
    cross = [k[1] * v[2] - k[2] * v[1], k[2] * v[0] - k[0] * v[2], k[0] * v[1] - k[1] * v[0]]
    dot = sum(kc * vc for kc, vc in zip(k, v))
    c, s = math.cos(angle), math.sin(angle)
    r = [v[i] * c + cross[i] * s + k[i] * dot * (1 - c) for i in range(3)]
    return gemmi.Position(b.x + r[0], b.y + r[1], b.z + r[2])


def noisy_pdb(target: str) -> tuple[str, dict]:
    """(PDB text, what was added) for ``target``: every addition near its pocket."""
    t = get_target(target)
    structure = rcsb_like_structure(target)
    model = structure[0]
    chain = model["A"]
    center = gemmi.Position(*t.center)
    added = {}

    # an alternate location on a pocket side chain: A (occupancy 0.6) as deposited, B (0.4) another
    # rotamer (the side chain turned 120 degrees about CA-CB, so bond lengths stay right)
    near = sorted((r for r in chain if r.name in ("LYS", "ARG", "GLN", "GLU", "LEU", "ILE", "MET")),
                  key=lambda r: r[0].pos.dist(center))[0]
    ca, cb = near["CA"][0].pos, near["CB"][0].pos
    side = [a for a in near if a.name not in ("N", "CA", "C", "O", "CB")]
    others = [a.pos for r in chain if r is not near and r.seqid.num != near.seqid.num for a in r]

    def clear(angle: float) -> bool:  # no atom of another residue within 2.6 A of the turned side chain
        return all(_rotate(a.pos, ca, cb, angle).dist(o) > 2.6 for a in side for o in others)

    angle = next(x for x in (2.094, 4.189, 1.047, 5.236, 3.142) if clear(x))
    for atom in side:
        atom.altloc = "A"
        atom.occ = 0.6
        b = atom.clone()
        b.altloc = "B"
        b.occ = 0.4
        b.pos = _rotate(atom.pos, ca, cb, angle)
        near.add_atom(b)
    added["altloc"] = f"A:{near.name}{near.seqid.num}"

    # a methionine as selenomethionine (MSE, HETATM, SE for SD)
    met = next((r for r in chain if r.name == "MET"), None)
    if met is not None:
        met.name = "MSE"
        met.het_flag = "H"
        for atom in met:
            if atom.name == "SD":
                atom.name = "SE"
                atom.element = gemmi.Element("Se")
        added["mse"] = f"A:MSE{met.seqid.num}"

    # a second protein chain: the first 30 residues again, 80 A away (another copy in the unit cell)
    second = gemmi.Chain("B")
    for res in list(chain)[:30]:
        copy = res.clone()
        for a in copy:
            a.pos = gemmi.Position(a.pos.x + 80.0, a.pos.y, a.pos.z)
        second.add_residue(copy)
    added["second_chain"] = "B"
    # waters in the pocket and a zinc ion near it, in chain A as deposited files have them
    for i, (dx, dy, dz) in enumerate([(2.0, 1.0, 0.5), (-2.5, 0.5, 1.0), (0.5, -3.0, -1.0), (1.0, 2.5, -2.5)]):
        res = gemmi.Residue()
        res.name, res.seqid, res.het_flag = "HOH", gemmi.SeqId(1000 + i, " "), "H"
        atom = gemmi.Atom()
        atom.name, atom.element, atom.occ, atom.b_iso = "O", gemmi.Element("O"), 1.0, 30.0
        atom.pos = gemmi.Position(center.x + dx, center.y + dy, center.z + dz)
        res.add_atom(atom)
        chain.add_residue(res)
    zn = gemmi.Residue()
    zn.name, zn.seqid, zn.het_flag = "ZN", gemmi.SeqId(2000, " "), "H"
    atom = gemmi.Atom()
    atom.name, atom.element, atom.occ, atom.b_iso = "ZN", gemmi.Element("Zn"), 1.0, 30.0
    atom.pos = gemmi.Position(center.x - 4.0, center.y + 3.0, center.z)
    zn.add_atom(atom)
    chain.add_residue(zn)
    added["waters"], added["zinc"] = 4, 1
    model.add_chain(second)  # adding a chain moves the model's chains: ``chain`` is not used after this

    structure.setup_entities()
    return structure.make_pdb_string(), added
