"""Seed-to-seed spread of Vina scores at exhaustiveness 8, for dockstring and for tgsci.

Vina's Monte Carlo search is stochastic: at exhaustiveness 8 a flexible ligand's best score moves
with the seed. This sets the floor under any agreement figure between two docking pipelines.

    python benchmarks/docking_noise.py [--pairs haloperidol:JAK2,propranolol:JAK2] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from docking_throughput import PANEL
    from dockstring import load_target

    from simulators.docking import DockingSettings, DockingSimulator

    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", default="haloperidol:JAK2,propranolol:JAK2,fenofibric acid:PPARA")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'pair':28s}{'dockstring seeds':>28s}{'spread':>8s}{'tgsci seeds':>28s}{'spread':>8s}")
    for pair in args.pairs.split(","):
        ligand, target = pair.split(":")
        smiles = PANEL[ligand]
        seeds = [974528263 + i for i in range(args.seeds)]
        ds = [load_target(target).dock(smiles, seed=s)[0] for s in seeds]
        ours = []
        for s in seeds:
            with DockingSimulator(target, DockingSettings(seed=s), cache_dir=tempfile.mkdtemp()) as sim:
                ours.append(sim.evaluate([smiles])[0].metrics["vina"])
        fmt = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        print(f"{pair:28s}{fmt(ds):>28s}{max(ds) - min(ds):8.2f}{fmt(ours):>28s}{max(ours) - min(ours):8.2f}", flush=True)
        print(f"{'':28s}{'mean ' + format(statistics.mean(ds), '.2f'):>28s}{'':8s}{'mean ' + format(statistics.mean(ours), '.2f'):>28s}")


if __name__ == "__main__":
    main()
