"""The approved drugs' docking results, computed once with the pinned Vina and shipped with tgsci.

Every run docks its target's approved drugs to compare against; with a cold cache that is most of
a short run's time (four drugs on PPARA: ~2 minutes on 2 cores). ``targets/reference_scores.json``
holds their results keyed exactly as the docking cache keys them: sha256 of the canonical SMILES,
the target's receptor sha256 and box, every docking setting that changes a score (exhaustiveness,
seed, poses, pH, ligand writer, limits) and the software versions (Vina, RDKit, Open Babel, meeko,
ligand preparation). A run uses a shipped result only when that key matches exactly, so another
Vina, receptor, box, seed or exhaustiveness docks again. A test re-docks a sample and gets the
shipped numbers. The demo's target (PPARA) also ships the seeds a run's confirmation docks
(``tgsci.domains.molecule.confirm``). ``python -m simulators.reference_scores`` docks what is
missing (new drugs); ``--all`` re-docks everything (after a pin changes).
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .cache import key_of

SHIPPED = Path(__file__).resolve().parent.parent / "targets" / "reference_scores.json"
FORMAT = 1


@lru_cache(maxsize=1)
def _entries() -> dict:
    try:
        data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def shipped(fields: dict) -> Optional[dict]:
    """The shipped result ({"metrics", "artifacts"}) for these exact cache fields, or None."""
    entry = _entries().get(key_of(fields))
    if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict) or entry.get("fields") != json.loads(json.dumps(fields)):
        return None  # a hash collision or a hand-edited file: dock instead
    return {"metrics": entry["metrics"], "artifacts": entry.get("artifacts") or {}}


CONFIRMED_TARGETS = {"PPARA": 3}  # target -> seeds shipped (the run's seed and the confirmation's next ones)


def generate(out: Path = SHIPPED, redo: bool = False) -> int:
    """Dock every approved drug of every built-in target at the default settings (and the
    confirmation seeds of ``CONFIRMED_TARGETS``); keep the entries still current unless ``redo``."""
    from dataclasses import replace

    from .docking import DockingSettings, DockingSimulator
    from .files import write_json_atomic
    from .molecule_checks import canonical_smiles
    from .targets import get_target, target_names

    old = {} if redo else dict(_entries())
    entries = {}
    for name in target_names():
        target = get_target(name)
        if not target.references:
            continue
        base = DockingSettings()
        for settings in [replace(base, seed=base.seed + k) for k in range(CONFIRMED_TARGETS.get(name, 1))]:
            with DockingSimulator(target, settings, use_cache=False, use_shipped=False) as sim:
                refs = list({canonical_smiles(r.smiles): r for r in target.references}.items())
                todo = [(smi, r) for smi, r in refs if key_of(sim.cache_fields(smi)) not in old]
                entries.update({key_of(sim.cache_fields(smi)): old[key_of(sim.cache_fields(smi))] for smi, _ in refs
                                if key_of(sim.cache_fields(smi)) in old})
                for (smi, ref), m in zip(todo, sim.evaluate([smi for smi, _ in todo]) if todo else []):
                    if not m.valid:
                        print(f"{name} {ref.name}: {m.error}", file=sys.stderr)
                        continue
                    fields = sim.cache_fields(m.candidate)
                    entries[key_of(fields)] = {"target": name, "drug": ref.name, "vina": m.metrics.get("vina"), "fields": fields,
                                               "metrics": m.metrics, "artifacts": m.artifacts}
                    print(f"{name:8s} {ref.name:24s} seed {settings.seed} {m.metrics.get('vina'):7.2f} kcal/mol", flush=True)
                    write_json_atomic(out, {"format": FORMAT, "note": __doc__.split("\n\n")[1].replace("\n", " "),
                                            "entries": {**old, **entries}})  # a stopped run keeps what it docked
    write_json_atomic(out, {"format": FORMAT, "note": __doc__.split("\n\n")[1].replace("\n", " "), "entries": entries})
    _entries.cache_clear()
    return len(entries)


if __name__ == "__main__":
    print(f"{generate(redo='--all' in sys.argv)} results written to {SHIPPED}")
