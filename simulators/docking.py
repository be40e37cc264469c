"""AutoDock Vina 1.2.7 docking against a target (DOCKSTRING's or your own), isolated in worker processes.

Why workers: Vina can take the whole process down (``set_ligand_from_string('')`` exits it,
a large flexible ligand throws an uncatchable ``std::bad_alloc``). Each worker runs under a
memory limit and every ligand under a timeout; a crash costs one candidate, never the run.
Vina maps are computed once per worker and reused for every ligand (for a lone first ligand,
only its own atom types: see ``_Maps``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .cache import ResultCache, default_cache_dir
from .reference_scores import shipped
from .machine import usable_cores
from .molecule_checks import DOCKSTRING_SEED, PREP_VERSION, LigandError, LigandLimits
from .measurement import Measurement
from .targets import Target, get_target


@dataclass(frozen=True)
class DockingSettings:
    """Everything that changes a docking score (and so the cache key), plus resource limits."""

    exhaustiveness: int = 8
    seed: int = DOCKSTRING_SEED
    n_poses: int = 9
    ph: float = 7.4
    # PDBQT writer: "meeko" (default; closest to dockstring in benchmarks/docking_throughput.py)
    # or "openbabel" (dockstring's own conversion, byte-identical to its obabel command).
    writer: str = "meeko"
    limits: LigandLimits = field(default_factory=LigandLimits)
    # Resources: not part of the cache key.
    cpu: int = 0  # Vina threads per worker; 0 = chosen by docking_layout()
    timeout_s: float = 900.0
    memory_limit_mb: int = 4096

    def key_fields(self) -> dict:
        data = asdict(self)
        for name in ("cpu", "timeout_s", "memory_limit_mb"):
            data.pop(name)
        return data

    def to_json(self) -> str:
        import json

        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "DockingSettings":
        import json

        data = json.loads(text)
        data["limits"] = LigandLimits(**data["limits"])
        return cls(**data)

    def __post_init__(self) -> None:
        if self.exhaustiveness < 1 or self.n_poses < 1:
            raise ValueError("exhaustiveness and n_poses must be >= 1")
        if self.writer not in ("openbabel", "meeko"):
            raise ValueError("writer must be 'openbabel' or 'meeko'")


def software_versions() -> dict:
    """Versions that change docking results (part of cache keys), read without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"prep": PREP_VERSION}
    for name in ("vina", "rdkit", "openbabel-wheel", "meeko"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ----------------------------------------------------------------------------- layout
def docking_cores() -> int:
    """Cores docking may use: $TGSCI_DOCKING_CORES (a sweep sets its share per run), else the
    cores this process may run on."""
    env = os.environ.get("TGSCI_DOCKING_CORES", "").strip()
    return max(1, int(env)) if env else usable_cores()


def docking_layout(n_ligands: Optional[int], exhaustiveness: int, cores: Optional[int] = None, workers: int = 0,
                   threads: int = 0) -> tuple[int, int]:
    """(worker processes, Vina threads per worker) for a batch of ``n_ligands`` (None: any batch,
    the most workers a pool may start); 0 = choose.

    Vina's own threads first, up to ``exhaustiveness`` (its Monte Carlo runs are the unit of
    parallel work): threads share one set of maps, and a batch never waits on one worker that drew
    the slow ligand (measured by benchmarks/docking_throughput.py --batch: benchmarks/results/
    docking_batch.txt). Cores beyond ``exhaustiveness`` go to more workers, one
    ligand each at most, fed longest first (``expected_cost``)."""
    cores = cores or docking_cores()
    if threads <= 0:
        threads = max(1, cores // workers) if workers > 0 else max(1, min(cores, exhaustiveness))
    if workers <= 0:
        workers = max(1, cores // threads)
    if n_ligands is not None:
        workers = min(workers, max(1, n_ligands))
    return max(1, workers), threads


def expected_cost(smiles: str) -> float:
    """Relative Vina search cost of a ligand, for ordering a batch longest first: Vina runs
    70*3*(50 + atoms + 10*dof)/2 Monte Carlo steps of (25 + atoms)/3 local steps, each ~atoms."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return 0.0
    atoms = mol.GetNumHeavyAtoms()
    dof = 6 + rdMolDescriptors.CalcNumRotatableBonds(mol)
    return (50 + atoms + 10 * dof) * (25 + atoms) * atoms


# ----------------------------------------------------------------------------- worker side
class _Maps:
    """Vina on the receptor, with grid maps for the ligands it docks.

    A worker's first ligand, when no other ligand waits in its batch (a cold start: a new target,
    one molecule), gets maps for its own atom types only (Vina computes only the set ligand's
    types: ~1 s instead of ~2.5 s for all of them on a 30 A box); the first ligand of a larger batch,
    or any later ligand, gets maps for every type, once. A map's values depend only on the receptor
    and its type, so the scores are the same either way (tested)."""

    def __init__(self, vina, target: Target, settings: DockingSettings):
        self.vina, self.target, self.settings = vina, target, settings
        self.v = self._receptor()
        self.state = "none"  # none | ligand (maps of one ligand's types) | all

    def _receptor(self):
        v = self.vina.Vina(sf_name="vina", cpu=self.settings.cpu, seed=self.settings.seed, verbosity=0)
        v.set_receptor(str(self.target.receptor))
        return v

    def ligand(self, pdbqt: str, more: bool) -> tuple[str, float]:
        """Set the ligand, computing the maps it needs; returns which maps were computed
        ("ligand", "all" or "reused") and the seconds spent on them."""
        t0 = time.perf_counter()
        box = {"center": list(self.target.center), "box_size": list(self.target.size)}
        if self.state == "none" and not more:
            self.v.set_ligand_from_string(pdbqt)
            self.v.compute_vina_maps(**box)
            self.state = "ligand"
            return "ligand", time.perf_counter() - t0
        computed = "reused"
        if self.state != "all":
            if self.state == "ligand":  # a ligand is set: Vina would compute its types only
                self.v = self._receptor()
            self.v.compute_vina_maps(**box)
            self.state = computed = "all"
        self.v.set_ligand_from_string(pdbqt)
        return computed, time.perf_counter() - t0


def _dock_one(maps: _Maps, smiles: str, settings: DockingSettings, more: bool = True) -> dict:
    from rdkit import Chem

    from .ligand import pose_to_rdkit, prepare_ligand

    t0 = time.perf_counter()
    ligand = prepare_ligand(smiles, settings.ph, settings.seed, settings.writer, settings.limits)
    prep_s = time.perf_counter() - t0
    computed, maps_s = maps.ligand(ligand.pdbqt, more)
    t1 = time.perf_counter()
    v = maps.v
    v.dock(exhaustiveness=settings.exhaustiveness, n_poses=settings.n_poses)
    energies = v.energies(n_poses=settings.n_poses)
    if len(energies) == 0:
        raise LigandError("Vina found no pose in the box")
    best_pose = v.poses(n_poses=1)
    t2 = time.perf_counter()
    sdf = ""
    try:
        pose = pose_to_rdkit(best_pose, ligand.mol)
        pose.SetProp("_Name", ligand.canonical)
        pose.SetProp("vina_kcal_mol", f"{energies[0][0]:.3f}")
        sdf = Chem.MolToMolBlock(pose) + "> <vina_kcal_mol>\n" + f"{energies[0][0]:.3f}\n\n$$$$\n"
    except LigandError:
        pass  # the score stands; only the SDF view of the pose is missing
    return {
        "metrics": {"vina": float(energies[0][0]), "vina_poses": [float(e[0]) for e in energies]},
        "artifacts": {"pose_pdbqt": best_pose, "pose_sdf": sdf, "protonated": ligand.protonated},
        "timings": {"prep_s": prep_s, "maps": computed, "maps_s": maps_s, "dock_s": t2 - t1},
    }


def _worker_main(target_json: str, settings_json: str) -> None:
    """Worker loop (``python -m simulators.docking``): load the receptor into Vina, then dock each
    ``[SMILES, more]`` read as a JSON line on stdin (``more``: other ligands wait in the batch;
    see ``_Maps``); answer one JSON line per ligand on the protocol pipe. A receptor Vina rejects
    is answered with Vina's reason instead of "ready"."""
    import json
    import sys

    started = time.perf_counter()
    settings = DockingSettings.from_json(settings_json)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    from .child import limit_memory

    limit_memory(settings.memory_limit_mb)
    from . import ligand  # noqa: F401  (RDKit, Open Babel: imported here so the startup timing holds them)
    from .native import load_vina

    target = Target.from_dict(json.loads(target_json))
    vina = load_vina()
    timings = {"imports_s": time.perf_counter() - started}
    try:
        t0 = time.perf_counter()
        maps = _Maps(vina, target, settings)
        timings["receptor_s"] = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - Vina's own words go back to the caller
        protocol.write(json.dumps(["rejected", f"Vina rejected the receptor {target.name} ({target.receptor}): {exc}"]) + "\n")
        return
    protocol.write(json.dumps(["ready", timings]) + "\n")
    for line in sys.stdin:
        message = json.loads(line)
        if message is None:
            return
        smiles, more = message
        try:
            answer = ["ok", _dock_one(maps, smiles, settings, more)]
        except LigandError as exc:
            answer = ["invalid", str(exc)]
        except MemoryError:
            answer = ["error", "out of memory while docking"]
        except Exception as exc:  # any other failure is this ligand's, not the worker's
            answer = ["error", f"{type(exc).__name__}: {exc}"]
        protocol.write(json.dumps(answer) + "\n")


class _Worker:
    """A docking process started with ``python -m simulators.docking`` (no re-import of the
    caller's script, unlike multiprocessing's spawn), talking JSON lines over pipes."""

    def __init__(self, target: Target, settings: DockingSettings):
        import json
        import subprocess
        import sys

        from .child import child_command

        # -P and an absolute PYTHONPATH: the working directory is not on sys.path (a stray docking.py there is not imported)
        argv, env = child_command("simulators.docking", json.dumps(target.to_dict()), settings.to_json())
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, env=env,
        )
        self.ready = False
        self.started = time.perf_counter()
        self.startup: dict = {}  # seconds: total (spawn to ready), imports, receptor

    def alive(self) -> bool:
        return self.process.poll() is None

    def poll(self, timeout: float) -> bool:
        import select

        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return bool(ready)

    def recv(self):
        import json

        line = self.process.stdout.readline()
        if not line:
            raise EOFError
        return tuple(json.loads(line))

    def send(self, smiles, more: bool = True) -> None:
        """Dock ``smiles`` (None: stop); ``more``: other ligands of the batch are still waiting."""
        import json

        self.process.stdin.write(json.dumps(None if smiles is None else [smiles, more]) + "\n")
        self.process.stdin.flush()

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        if not self.poll(timeout):
            self.kill()
            raise RuntimeError("docking worker did not start in time (receptor maps took too long)")
        try:
            status, reason = self.recv()
        except EOFError:
            raise RuntimeError(f"docking worker died while starting (exit code {self.process.poll()})") from None
        if status == "rejected":
            self.kill()
            raise RuntimeError(reason)
        self.ready = status == "ready"
        self.startup = {"total_s": time.perf_counter() - self.started, **(reason or {})}

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(5)
        except Exception:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except Exception:
                pass


class DockingPool:
    """Docks a batch on up to ``n_workers`` processes (0 = ``docking_layout``), longest ligand first;
    restarts a worker after a crash or a timeout."""

    def __init__(self, target: Target, settings: DockingSettings, n_workers: int = 0):
        import dataclasses

        self.target = target
        self.n_workers, threads = docking_layout(None, settings.exhaustiveness, workers=n_workers, threads=settings.cpu)
        self.settings = dataclasses.replace(settings, cpu=threads)
        self.workers: list[Optional[_Worker]] = [None] * self.n_workers
        self.restarts = 0
        self.startups: list[dict] = []  # each worker start: seconds spent before its first ligand
        self.longest_first = True  # the benchmark compares the given order

    def _worker(self, i: int) -> _Worker:
        worker = self.workers[i]
        if worker is not None and not worker.alive():
            self._drop(i)
            worker = None
        if worker is None:
            worker = self.workers[i] = _Worker(self.target, self.settings)
            worker.wait_ready(timeout=300)
            self.startups.append(worker.startup)
        return worker

    def _drop(self, i: int, failed: bool = True) -> None:
        """Kill worker i; a failed one (crash, timeout) is replaced on next use and counted."""
        if self.workers[i] is not None:
            self.workers[i].kill()
            self.restarts += int(failed)
        self.workers[i] = None

    def dock(self, smiles_list: list[str]) -> list[tuple[str, object]]:
        """(status, payload) per SMILES, in order; status is ok | invalid | error."""
        results: list[Optional[tuple[str, object]]] = [None] * len(smiles_list)
        queue = list(enumerate(smiles_list))
        if len(queue) > 1 and self.longest_first:  # the last ligand to start is a short one
            queue.sort(key=lambda job: -expected_cost(job[1]))
        n_workers = min(self.n_workers, len(queue)) if queue else 0
        running: dict[int, tuple[int, float]] = {}  # worker -> (job index, start time)
        while queue or running:
            for i in range(n_workers):
                if i not in running and queue:
                    job, smiles = queue.pop(0)
                    try:
                        self._worker(i).send(smiles, more=bool(queue))
                        running[i] = (job, time.monotonic())
                    except (RuntimeError, OSError) as exc:
                        results[job] = ("error", f"docking worker failed: {exc}")
                        self._drop(i)
            for i, (job, started) in list(running.items()):
                worker = self.workers[i]
                if worker.poll(0.05):
                    try:
                        results[job] = worker.recv()
                    except (EOFError, OSError, ValueError):
                        worker.process.wait(5)
                        results[job] = ("error", _crash_text(worker.process.poll(), self.settings))
                        self._drop(i)
                    del running[i]
                elif not worker.alive():
                    results[job] = ("error", _crash_text(worker.process.poll(), self.settings))
                    self._drop(i)
                    del running[i]
                elif time.monotonic() - started > self.settings.timeout_s:
                    results[job] = ("error", f"docking took longer than {self.settings.timeout_s:.0f} s and was stopped")
                    self._drop(i)
                    del running[i]
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for i, w in enumerate(self.workers):
            if w is not None:
                try:
                    w.send(None)
                except OSError:
                    pass
                self._drop(i, failed=False)


def _crash_text(code: Optional[int], settings: DockingSettings) -> str:
    hint = f" (likely out of memory: limit {settings.memory_limit_mb} MB)" if code and code < 0 else ""
    return f"the docking process crashed with exit code {code}{hint}"


# ----------------------------------------------------------------------------- public simulator
class DockingSimulator:
    """``evaluate(smiles_list) -> list[Measurement]`` with metrics ``vina`` (kcal/mol, lower is better)."""

    def __init__(
        self,
        target: str | Target,
        settings: Optional[DockingSettings] = None,
        cache_dir: Optional[os.PathLike] = None,
        n_workers: int = 0,
        use_cache: bool = True,
        use_shipped: Optional[bool] = None,
    ):
        """``use_shipped``: take the approved drugs' shipped results (``simulators.reference_scores``)
        when their key matches exactly; default: whenever the cache is on."""
        self.target = target if isinstance(target, Target) else get_target(target)
        self.target_key = self.target.fingerprint()  # receptor content and box: part of every cache key
        self.settings = settings or DockingSettings()
        self.n_workers = n_workers
        self._pool: Optional[DockingPool] = None
        self.versions = software_versions()
        self.cache = ResultCache(Path(cache_dir) if cache_dir else default_cache_dir()) if use_cache else None
        self.use_shipped = use_cache if use_shipped is None else use_shipped
        self.misses = 0  # dockings actually run (cache misses), for tests and sweeps
        self.ligand_timings: list[dict] = []  # per docked ligand: preparation and Vina seconds

    def cache_fields(self, canonical: str) -> dict:
        return {"smiles": canonical, "target": self.target_key, "settings": self.settings.key_fields(), "versions": self.versions}

    def evaluate(self, smiles_list: list[str]) -> list[Measurement]:
        from .molecule_checks import canonical_smiles

        out: list[Optional[Measurement]] = [None] * len(smiles_list)
        todo: list[tuple[int, str, str]] = []
        for i, smiles in enumerate(smiles_list):
            try:
                canonical = canonical_smiles(smiles)
            except LigandError as exc:
                out[i] = Measurement(str(smiles), error=str(exc))
                continue
            fields = self.cache_fields(canonical)
            hit = self.cache.get(fields) if self.cache is not None else None
            if hit is None and self.use_shipped:  # an approved drug docked with exactly these settings and versions
                hit = shipped(fields)
                if hit is not None and self.cache is not None:
                    self.cache.put(fields, hit)
            if hit is not None:
                out[i] = Measurement(canonical, hit["metrics"], None, hit.get("artifacts", {}), cached=True)
            else:
                todo.append((i, canonical, smiles))
        if todo:
            pool = self._get_pool()
            started = time.perf_counter()
            results = pool.dock([canonical for _, canonical, _ in todo])
            per = (time.perf_counter() - started) / len(todo)
            for (i, canonical, _), (status, payload) in zip(todo, results):
                if status == "ok":
                    self.ligand_timings.append(payload.get("timings", {}))
                    self.misses += 1
                    out[i] = Measurement(canonical, payload["metrics"], None, payload["artifacts"], seconds=per)
                    if self.cache is not None:
                        self.cache.put(self.cache_fields(canonical), {"metrics": payload["metrics"], "artifacts": payload["artifacts"]})
                else:
                    out[i] = Measurement(canonical, error=str(payload), seconds=per)
        return out  # type: ignore[return-value]

    def _get_pool(self) -> DockingPool:
        if self._pool is None:
            self._pool = DockingPool(self.target, self.settings, self.n_workers)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> "DockingSimulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


if __name__ == "__main__":
    import sys

    _worker_main(sys.argv[1], sys.argv[2])  # target as JSON, settings as JSON
