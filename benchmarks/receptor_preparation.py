"""Your own receptor vs the one DOCKSTRING ships: preparation time and docking agreement.

DOCKSTRING receptors are written back as RCSB would deliver them (heavy atoms, PDB; one of them
with real-file noise: waters, an alternate location, a second chain, a zinc ion, an MSE),
prepared by tgsci (gemmi + PDBFixer + meeko, simulators/receptor.py) and docked with the
manifest box and the same seed as the shipped PDBQT. Prints per pair, mean and max |diff|, and
the preparation time of a ~300-residue receptor (KDR), cold and from the cache.

    python benchmarks/receptor_preparation.py [--ligands 10] [--exhaustiveness 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from docking_throughput import PANEL  # noqa: E402  (the same 10-ligand panel as the docking benchmark)

CASES = [("THRB", (), False), ("PPARA", ("A:688",), False), ("ESR1", (), False), ("THRB", (), True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ligands", type=int, default=10)
    parser.add_argument("--exhaustiveness", type=int, default=8)
    args = parser.parse_args()

    from receptor_inputs import noisy_pdb, rcsb_like_pdb

    from simulators.docking import DockingSettings, DockingSimulator
    from simulators.receptor import ReceptorOptions, prepare_receptor
    from simulators.targets import get_target, target_from_files

    work = Path(tempfile.mkdtemp(prefix="tgsci-receptor-bench-"))
    settings = DockingSettings(exhaustiveness=args.exhaustiveness)
    ligands = dict(list(PANEL.items())[: args.ligands])

    kdr = work / "kdr.pdb"
    kdr.write_text(rcsb_like_pdb("KDR"))
    t0 = time.perf_counter()
    kdr_options = ReceptorOptions(delete_bad_residues=True)  # DOCKSTRING's KDR has clashing residues (A:23, A:443)
    cold = prepare_receptor(kdr, kdr_options, cache_dir=work / "prep")
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepare_receptor(kdr, kdr_options, cache_dir=work / "prep")
    t_hit = time.perf_counter() - t0
    print(f"KDR ({cold.record['residues']} residues): preparation {t_cold:.1f} s cold (gemmi + PDBFixer H at pH 7.4 + meeko), "
          f"{t_hit * 1000:.1f} ms from the cache; {cold.record['added']['hydrogens']} hydrogens added; deleted as untypable "
          f"{cold.record['deleted_untypable']}, crowded terminal O dropped {cold.record['terminal_oxygens_dropped']}", flush=True)

    print(f"\n{'target':14s}{'ligand':18s}{'DOCKSTRING rec.':>16s}{'own rec.':>10s}{'|diff|':>8s}")
    summary = []
    shipped_scores: dict = {}
    for name, delete, noisy in CASES:
        shipped = get_target(name)
        pdb = work / f"{name}{'-noisy' if noisy else ''}.pdb"
        pdb.write_text(noisy_pdb(name)[0] if noisy else rcsb_like_pdb(name))
        options = ReceptorOptions(delete_residues=delete, chains=("A",) if noisy else ())
        own = target_from_files(pdb, box_center=shipped.center, box_size=shipped.size, options=options, cache_dir=work / "prep")
        if name not in shipped_scores:
            with DockingSimulator(shipped, settings, cache_dir=work / f"dock-{name}") as sim:
                shipped_scores[name] = [m.metrics.get("vina") for m in sim.evaluate(list(ligands.values()))]
        with DockingSimulator(own, settings, cache_dir=work / f"dock-own-{pdb.stem}") as sim:
            ours = [m.metrics.get("vina") for m in sim.evaluate(list(ligands.values()))]
        label = name + (" (noisy)" if noisy else "") + (f" -{','.join(delete)}" if delete else "")
        diffs = []
        for lig, a, b in zip(ligands, shipped_scores[name], ours):
            d = abs(a - b)
            diffs.append(d)
            print(f"{label:14s}{lig:18s}{a:16.3f}{b:10.3f}{d:8.3f}", flush=True)
        summary.append((label, sum(diffs) / len(diffs), max(diffs)))
    print(f"\nexhaustiveness {args.exhaustiveness}, same seed, manifest box, {len(ligands)} ligands per target")
    print(f"{'receptor':26s}{'mean |diff|':>12s}{'max |diff|':>12s}   (kcal/mol; own receptor vs DOCKSTRING's)")
    for label, mean, mx in summary:
        print(f"{label:26s}{mean:12.3f}{mx:12.3f}")


if __name__ == "__main__":
    main()
