"""Run a tgsci sweep on a SLURM cluster with dask-jobqueue.

The sweep process (this script) runs on a login node or in a small job of its own; it starts
a Dask scheduler, submits SLURM jobs that each start Dask workers, and hands the cluster to
``run_sweep``. Each run is one Dask task that builds its objective and engine on the worker
and calls ``optimize()`` on its run directory.

    python examples/sweep_jobqueue.py examples/sweep_small.toml /shared/runs/sweep1 --jobs 4
    python examples/sweep_jobqueue.py examples/sweep_small.toml /shared/runs/sweep1 --print-job-script

Requirements on the cluster:
- The same virtual environment on every node (``--venv``, activated in each job's prologue).
- ``out_dir`` on a filesystem every node sees (NFS, Lustre, GPFS): run directories are
  written by the workers and read by the sweep process. The per-run and per-sweep locks use
  flock(), which Linux NFS clients (v4) emulate with POSIX locks.
- The docking cache (``TGSCI_CACHE_DIR``, SQLite in WAL mode) must NOT live on NFS: SQLite's
  WAL needs shared memory that network filesystems do not provide. Use node-local disk that
  is yours (``--cache-dir``, required: e.g. the job-private ``$TMPDIR/tgsci`` many sites set, or
  a directory on the node's scratch disk). There is no default under a shared ``/tmp``: another
  user could create it first, and tgsci refuses a cache directory it does not own (so a squatted
  one stops the job with its owner's name rather than feeding it poisoned results). Each node then keeps its own cache,
  so a (SMILES, target) pair can be docked once per node rather than once per cluster, but a
  resumed run still never repeats a finished step (those are in its run directory).
- The embedded LLM runs on the worker's CPU; with an API model, put its key in the job's
  environment (e.g. ``export OPENAI_API_KEY`` in your shell profile), never in a file here.

Killing this script loses no finished step: run it again with the same arguments and it
skips finished runs, resumes interrupted ones and retries failed ones (up to max_attempts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def make_cluster(args):
    from dask_jobqueue import SLURMCluster

    prologue = [
        f"source {args.venv}/bin/activate",
        f"export TGSCI_CACHE_DIR={args.cache_dir}",
        "export OMP_NUM_THREADS=1",
    ]
    return SLURMCluster(
        queue=args.partition,
        account=args.account,
        cores=args.cores,                 # CPUs per job ...
        processes=args.cores,             # ... one Dask worker process per CPU, 1 thread each
        memory=args.memory,               # per job; Vina + RDKit need ~1-2 GB per docking process
        walltime=args.walltime,
        job_script_prologue=prologue,
        log_directory=str(Path(args.out_dir) / "slurm-logs"),
        local_directory="/tmp",           # Dask spill space on node-local disk
        death_timeout=120,                # a worker whose scheduler vanished exits instead of idling
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="sweep TOML file")
    p.add_argument("out_dir", help="output directory on a shared filesystem")
    p.add_argument("--jobs", type=int, default=2, help="SLURM jobs to keep running (each starts --cores workers)")
    p.add_argument("--cores", type=int, default=8)
    p.add_argument("--memory", default="16GB")
    p.add_argument("--walltime", default="04:00:00")
    p.add_argument("--partition", default=None)
    p.add_argument("--account", default=None)
    p.add_argument("--venv", default=str(Path(sys.prefix)), help="virtual environment to activate on the nodes")
    p.add_argument("--cache-dir", required=True, help="TGSCI_CACHE_DIR on the nodes: node-local disk of your own, e.g. '$TMPDIR/tgsci'")
    p.add_argument("--adapt", action="store_true", help="scale between 0 and --jobs jobs with the queue of runs")
    p.add_argument("--print-job-script", action="store_true", help="print the sbatch script and exit (submits nothing)")
    args = p.parse_args(argv)

    cluster = make_cluster(args)
    if args.print_job_script:
        print(cluster.job_script())
        cluster.close()
        return 0

    from tgsci.sweep import run_sweep
    from tgsci.sweep.report import report_sweep

    try:
        if args.adapt:
            cluster.adapt(minimum_jobs=0, maximum_jobs=args.jobs)
        else:
            cluster.scale(jobs=args.jobs)
        print(f"Dask dashboard (if bokeh is installed): {cluster.dashboard_link}")
        result = run_sweep(args.spec, args.out_dir, scheduler=cluster, progress=True)
    finally:
        cluster.close()
    report_sweep(args.out_dir)
    print(f"{len(result.finished)} finished, {len(result.failed)} failed of {len(result.runs)} runs; "
          f"table: {Path(args.out_dir) / 'summary.csv'}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
