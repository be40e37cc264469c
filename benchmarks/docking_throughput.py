"""Docking agreement and throughput: tgsci (Vina 1.2.7 Python API, maps reused) vs dockstring's dock().

For a panel of ligands x targets at exhaustiveness 8 (dockstring's setting), prints each
pair's score from dockstring and from tgsci (with dockstring's Open Babel PDBQT writer and
with meeko), the largest disagreement, the wall time of each side and the ratio, and the
latency of a cache hit. Writes results/docking_agreement.json (the agreement test reads it).

    python benchmarks/docking_throughput.py [--ligands 10] [--targets PPARA,JAK2,DRD2]
    python benchmarks/docking_throughput.py --recorded   # re-dock through the product path only, against the recorded dockstring scores
    python benchmarks/docking_throughput.py --cold       # one ligand per target, nothing warm: where the seconds go
    python benchmarks/docking_throughput.py --batch      # a batch of n_cores ligands: each layout vs serial single-thread
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PANEL = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "gemfibrozil": "Cc1ccc(C)c(OCCCC(C)(C)C(=O)O)c1",
    "fenofibric acid": "CC(C)(Oc1ccc(cc1)C(=O)c1ccc(Cl)cc1)C(=O)O",
    "propranolol": "CC(C)NCC(O)COc1cccc2ccccc12",
    "celecoxib": "Cc1ccc(cc1)-c1cc(nn1-c1ccc(cc1)S(N)(=O)=O)C(F)(F)F",
    "haloperidol": "OC1(CCN(CCCC(=O)c2ccc(F)cc2)CC1)c1ccc(Cl)cc1",
    "rosiglitazone": "CN(CCOc1ccc(CC2SC(=O)NC2=O)cc1)c1ccccn1",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ligands", type=int, default=10)
    parser.add_argument("--targets", default="PPARA,JAK2,DRD2")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "docking_agreement.json"))
    parser.add_argument("--recorded", action="store_true",
                        help="dock the recorded panel through build_objective()/evaluate() (meeko) and compare with the recorded dockstring scores")
    parser.add_argument("--cold", action="store_true", help="one ligand per target, new process, empty cache; vs dockstring dock()")
    parser.add_argument("--batch", action="store_true", help="a batch of n_cores ligands on each docking layout")
    parser.add_argument("--batch-ligands", default="rosiglitazone,gemfibrozil",
                        help="--batch: panel ligands (default: the slow and a fast one, n_cores = 2)")
    args = parser.parse_args()
    if args.recorded:
        return recorded_agreement(Path(args.out))
    if args.cold:
        return cold_single()
    if args.batch:
        return batch_scaling(args.batch_ligands.split(","), args.targets.split(",")[0])

    from simulators.docking import DockingSettings, DockingSimulator
    from dockstring import load_target

    ligands = dict(list(PANEL.items())[: args.ligands])
    targets = args.targets.split(",")
    rows, times = [], {"dockstring": 0.0, "openbabel": 0.0, "meeko": 0.0}
    phases = {w: dict.fromkeys(("startup_s", "maps_s", "prep_s", "dock_s"), 0.0) for w in ("openbabel", "meeko")}
    cache_hit_s = []
    for target in targets:
        sims = {}
        for writer in ("openbabel", "meeko"):
            cache = tempfile.mkdtemp()
            t0 = time.perf_counter()
            sims[writer] = DockingSimulator(target, DockingSettings(exhaustiveness=8, writer=writer), cache_dir=cache)
            sims[writer].evaluate(list(ligands.values()))  # one batch: maps once, reused for every ligand
            times[writer] += time.perf_counter() - t0
            _add_phases(phases[writer], sims[writer])
        ds_target = load_target(target)
        for name, smiles in ligands.items():
            t0 = time.perf_counter()
            try:
                ds_score, _ = ds_target.dock(smiles)
            except Exception as exc:  # dockstring raises on some preparations
                ds_score = None
                print(f"dockstring failed on {name}/{target}: {exc}", flush=True)
            times["dockstring"] += time.perf_counter() - t0
            ours = {w: sims[w].evaluate([smiles])[0] for w in sims}  # cache hits now
            t0 = time.perf_counter()
            sims["openbabel"].evaluate([smiles])
            cache_hit_s.append(time.perf_counter() - t0)
            row = {"ligand": name, "smiles": smiles, "target": target, "dockstring": ds_score,
                   **{f"tgsci_{w}": (m.metrics.get("vina") if m.valid else None) for w, m in ours.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
        for sim in sims.values():
            sim.close()

    def max_diff(key):
        diffs = [abs(r[key] - r["dockstring"]) for r in rows if r[key] is not None and r["dockstring"] is not None]
        return max(diffs), sum(diffs) / len(diffs)

    n = len(rows)
    print(f"\n{n} ligand-target pairs at exhaustiveness 8 (2 cores)")
    print(f"{'':24s}{'wall s':>10s}{'s/ligand':>10s}{'speed-up':>10s}{'max |diff|':>12s}{'mean |diff|':>12s}")
    print(f"{'dockstring dock()':24s}{times['dockstring']:10.1f}{times['dockstring'] / n:10.2f}{1.0:10.2f}{'-':>12s}{'-':>12s}")
    summary = {"pairs": n, "exhaustiveness": 8, "rows": rows, "wall_s": times}
    for w in ("openbabel", "meeko"):
        mx, mean = max_diff(f"tgsci_{w}")
        ratio = times["dockstring"] / times[w]
        summary[w] = {"max_abs_diff": mx, "mean_abs_diff": mean, "speedup": ratio}
        print(f"{'tgsci (' + w + ')':24s}{times[w]:10.1f}{times[w] / n:10.2f}{ratio:10.2f}{mx:12.2f}{mean:12.2f}")
    print("\nwhere tgsci's seconds go (summed over workers; Vina's search is the same work dockstring's binary does):")
    for w in ("openbabel", "meeko"):
        ph = phases[w]
        print(f"  {w:10s} worker start {ph['startup_s']:6.1f}  maps {ph['maps_s']:6.1f}  preparation {ph['prep_s']:5.1f}  "
              f"Vina search {ph['dock_s']:6.1f} s ({ph['dock_s'] / times[w]:.0%} of the wall time); "
              f"ceiling if all but the search were free: {times['dockstring'] / ph['dock_s']:.2f}x")
    summary["phases_s"] = phases
    hit = sorted(cache_hit_s)[len(cache_hit_s) // 2]
    per_dock = times["openbabel"] / n
    summary["cache_hit_s"] = hit
    print(f"cache hit (median) {hit * 1000:.2f} ms vs a docking {per_dock:.1f} s: {per_dock / hit:,.0f}x")
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


def _add_phases(total: dict, sim) -> None:
    """Add a simulator's worker start-up, map, preparation and search seconds to ``total``."""
    for t in sim.ligand_timings:
        for key in ("maps_s", "prep_s", "dock_s"):
            total[key] += t.get(key, 0.0)
    total["startup_s"] += sum(s.get("total_s", 0.0) for s in sim._get_pool().startups)


COLD_PAIRS = [("PPARA", "fenofibric acid"), ("DRD2", "haloperidol"), ("ADRB2", "propranolol"), ("JAK2", "celecoxib"),
              ("ESR1", "gemfibrozil")]


def cold_single() -> None:
    """Each pair on a target not docked before in the process: dockstring's dock() vs a new
    DockingSimulator (new worker process, empty cache), with tgsci's seconds split by phase."""
    from dockstring import load_target

    from simulators.docking import DockingSettings, DockingSimulator

    print("cold: one ligand per target, exhaustiveness 8, all cores; tgsci = new DockingSimulator, new process, empty cache")
    head = f"{'target':6s} {'ligand':16s} {'dockstring s':>12s} {'tgsci s':>8s} {'ratio':>6s} {'ds':>7s} {'tgsci':>7s}"
    phases = ("process_s", "imports_s", "receptor_s", "maps_s", "prep_s", "dock_s", "other_s")
    print(head + "  " + " ".join(f"{p[:-2]:>8s}" for p in phases), flush=True)
    total = {"dockstring": 0.0, "tgsci": 0.0}
    sums = dict.fromkeys(phases, 0.0)
    diffs = []
    for target, name in COLD_PAIRS:
        smiles = PANEL[name]
        t0 = time.perf_counter()
        ds_score, _ = load_target(target).dock(smiles)
        ds_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with DockingSimulator(target, DockingSettings(exhaustiveness=8), cache_dir=tempfile.mkdtemp()) as sim:
            m = sim.evaluate([smiles])[0]
            ours_s = time.perf_counter() - t0
            start, lig = sim._pool.startups[0], sim.ligand_timings[0]
        split = {"process_s": start["total_s"] - start["imports_s"] - start["receptor_s"],
                 "imports_s": start["imports_s"], "receptor_s": start["receptor_s"], "maps_s": lig["maps_s"],
                 "prep_s": lig["prep_s"], "dock_s": lig["dock_s"]}
        split["other_s"] = ours_s - sum(split.values())
        for k in phases:
            sums[k] += split[k]
        total["dockstring"] += ds_s
        total["tgsci"] += ours_s
        diffs.append(abs(m.metrics["vina"] - ds_score))
        print(f"{target:6s} {name:16s} {ds_s:12.1f} {ours_s:8.1f} {ds_s / ours_s:6.2f} {ds_score:7.2f} {m.metrics['vina']:7.2f}  "
              + " ".join(f"{split[k]:8.2f}" for k in phases), flush=True)
    n = len(COLD_PAIRS)
    print(f"{'total':23s} {total['dockstring']:12.1f} {total['tgsci']:8.1f} {total['dockstring'] / total['tgsci']:6.2f} "
          f"{'':15s}  " + " ".join(f"{sums[k]:8.2f}" for k in phases))
    print(f"per ligand: dockstring {total['dockstring'] / n:.1f} s, tgsci {total['tgsci'] / n:.1f} s "
          f"({total['dockstring'] / total['tgsci']:.2f}x); mean |score diff| {sum(diffs) / n:.3f}, max {max(diffs):.2f} kcal/mol")


def batch_scaling(names: list[str], target: str) -> None:
    """A batch on each layout, workers started first (maps computed), no cache: the docking time
    of the batch against the same ligands docked one after another on one thread."""
    from simulators.docking import DockingSettings, DockingSimulator, docking_cores, docking_layout

    cores = docking_cores()
    ligands = [PANEL[n] for n in names]
    auto = docking_layout(len(ligands), 8, cores)
    layouts = [("serial, 1 worker x 1 thread", 1, 1, True), (f"auto: {auto[0]} worker(s) x {auto[1]} thread(s)", 0, 0, True)]
    if cores > 1:
        layouts += [(f"{cores} workers x 1 thread, longest first", cores, 1, True),
                    (f"{cores} workers x 1 thread, as given", cores, 1, False),
                    (f"{cores} workers x {cores} threads", cores, cores, True)]
    print(f"batch of {len(ligands)} on {target} ({', '.join(names)}), exhaustiveness 8, {cores} cores; "
          "workers started before timing, no cache")
    serial = None
    for label, workers, threads, longest_first in layouts:
        with DockingSimulator(target, DockingSettings(exhaustiveness=8, cpu=threads), use_cache=False, n_workers=workers) as sim:
            pool = sim._get_pool()
            pool.longest_first = longest_first
            for i in range(min(pool.n_workers, len(ligands))):
                pool._worker(i)  # start every worker the batch will use: maps computed before the clock
            t0 = time.perf_counter()
            if workers == 1 and threads == 1:
                scores = [sim.evaluate([s])[0].metrics["vina"] for s in ligands]
            else:
                scores = [m.metrics["vina"] for m in sim.evaluate(ligands)]
            seconds = time.perf_counter() - t0
        serial = serial or seconds
        speedup = serial / seconds
        print(f"{label:40s} {seconds:7.1f} s  speed-up {speedup:4.2f}  (goal {0.85 * min(len(ligands), cores):.2f} = 0.85 x cores used)  "
              f"scores {', '.join(f'{x:.2f}' for x in scores)}", flush=True)


def recorded_agreement(path: Path) -> None:
    """The molecule objective's docking (the path the loop uses) against dockstring's recorded scores."""
    from tgsci import build_objective

    recorded = json.loads(path.read_text())
    rows = [r for r in recorded["rows"] if r["dockstring"] is not None]
    diffs, wall = [], 0.0
    for target in dict.fromkeys(r["target"] for r in rows):
        panel = [r for r in rows if r["target"] == target]
        objective = build_objective({"kind": "molecule", "target": target, "aggregation": "vina", "compare_references": False,
                                     "docking": {"exhaustiveness": 8}, "cache_dir": tempfile.mkdtemp()})
        t0 = time.perf_counter()
        evs = objective.evaluate([r["smiles"] for r in panel])  # one batch: maps once
        wall += time.perf_counter() - t0
        objective.close()
        for r, ev in zip(panel, evs):
            diffs.append(abs(ev.metrics["vina"] - r["dockstring"]))
            print(f"{target:6s}{r['ligand']:18s} dockstring {r['dockstring']:6.2f}   tgsci {ev.metrics['vina']:7.3f}   recorded tgsci {r['tgsci_meeko']:7.3f}", flush=True)
    rec = recorded["meeko"]
    print(f"\n{len(diffs)} pairs, exhaustiveness 8: mean |diff| vs dockstring now {sum(diffs) / len(diffs):.3f} "
          f"(recorded {rec['mean_abs_diff']:.3f}), max {max(diffs):.2f} (recorded {rec['max_abs_diff']:.2f}), "
          f"within 0.3: {sum(d <= 0.3 for d in diffs)}/{len(diffs)} (recorded {rec.get('within_0.3', '-')}); "
          f"tgsci wall {wall:.0f} s (recorded {recorded['wall_s']['meeko']:.0f} s for its run)")


if __name__ == "__main__":
    main()
