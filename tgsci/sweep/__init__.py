"""Sweeps: hundreds of independent ``optimize()`` runs from one TOML file, on Dask distributed.

A sweep file names the objective (molecules: targets x starting SMILES; plans: cases), the
seeds, the methods, the budget and the simulator settings; ``run_sweep`` expands it into runs,
one run directory each under ``out_dir`` (named ``PPARA__start0-1a2b3c4d__seed0__tgd``), and
runs each as one Dask task that builds its own objective (from the objective spec checked
when the file was read: ``tgsci.domains``) and engine inside the worker and calls
``optimize()`` on its run directory::

    [sweep]
    kind = "molecule"                 # molecule | plan
    targets = ["PPARA", "JAK2"]       # or "all"  (plans: cases = ["tg119"] or "all")
    starts = ["c1ccccc1", "CCO"]      # plans: optional, default ["default"] = the case's weights
    seeds = [0, 1]                    # or a count: seeds = 2
    methods = ["tgd", "random"]       # or method = "tgd"

    [budget]                          # optimize() arguments
    max_steps = 10
    n_proposals = 4
    max_evaluations = 40
    patience = 3                      # 0 = no early stopping

    [engine]                          # config.make_engines() overrides
    model = "local/smollm2-135m"

    [docking]                         # simulators.docking.DockingSettings fields
    exhaustiveness = 8
    cpu = 0                           # Vina threads per docking process (0 = chosen from the run's cores)

    [objective]                       # the objective spec's options (tgsci.domains.molecule / .plan)
    aggregation = "dockstring"
    compare_references = true         # the run docks the approved drugs; reports read them from its record

    [plan]                            # plans: plan settings and options (fast, dose_grid_mm, max_iter, ...)

    [resources]
    llm_concurrency = 2               # LLM calls at once across the whole sweep
    docking_workers = 0               # docking processes per run (0 = chosen from the run's cores)
    max_attempts = 3                  # failures before a run is left as failed

Files in ``out_dir``: ``sweep.json`` (the expanded run list), ``status.json`` (status,
attempts and failures per run; written atomically by the sweep process only), ``sweep.lock``
(held while a sweep runs; a second sweep on the same directory refuses to start), and per
run: its run record (``tgsci.record``) plus ``sweep_run.json`` (one entry per attempt: worker,
wall times, simulations actually run), written atomically by the task.

Modules: ``spec`` (read and check the file), ``task`` (one run on a worker), ``client`` (Dask,
retries, status), ``progress`` (the bar), ``report`` (summary tables and panels).

Re-running a sweep skips finished runs, resumes interrupted ones from their run directories
(optimize appends every step, so a kill loses no finished step) and retries failed ones until
they have failed ``max_attempts`` times. A run that ended with ``engine_error`` (LLM provider
down) counts as failed; the next invocation resumes it from its trajectory.
"""

from ..domains import SpecError
from .client import SweepLockedError, SweepResult, default_n_workers, run_sweep, sweep_lock
from .spec import SweepSpec, load_spec, parse_spec, run_name
from .task import RUN_FILE, LimitedEngine, run_task

__all__ = [
    "SpecError", "SweepLockedError", "SweepResult", "SweepSpec", "LimitedEngine", "RUN_FILE", "default_n_workers",
    "load_spec", "parse_spec", "run_name", "run_sweep", "run_task", "sweep_lock",
]
