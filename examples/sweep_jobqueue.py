"""A tgsci sweep on a SLURM cluster from Python: what ``tgsci sweep --cluster slurm`` does, for a
script or a notebook on a login node (``tgsci.sweep.slurm``: dask-jobqueue's SLURMCluster, checked
with ``sbatch --test-only`` and watched through squeue).

The sweep process (this script) holds the Dask scheduler; each SLURM job starts one single-threaded
Dask worker per core; each run is one Dask task that builds its objective and engine on the worker
and calls ``optimize()`` on its run directory.

    python examples/sweep_jobqueue.py examples/sweep_small.toml /shared/runs/sweep1 --jobs 4 --cache-dir '$TMPDIR/tgsci'
    python examples/sweep_jobqueue.py examples/sweep_small.toml /shared/runs/sweep1 --cache-dir /tmp/x --print-job-script

Requirements on the cluster:
- The same virtual environment on every node (``--python``: its interpreter, the default is this one).
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


def main(argv=None) -> int:
    from tgsci.sweep.report import report_sweep
    from tgsci.sweep.slurm import ClusterError, SlurmSettings, run_sweep_on_slurm, start_cluster

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="sweep TOML file")
    p.add_argument("out_dir", help="output directory on a shared filesystem")
    p.add_argument("--jobs", type=int, default=2, help="SLURM jobs to keep running (each starts --cores workers)")
    p.add_argument("--cores", type=int, default=8)
    p.add_argument("--memory", default="16GB")
    p.add_argument("--walltime", default="04:00:00")
    p.add_argument("--partition", default=None)
    p.add_argument("--account", default=None)
    p.add_argument("--python", default=sys.executable, help="the shared environment's Python on the nodes")
    p.add_argument("--cache-dir", required=True, help="TGSCI_CACHE_DIR on the nodes: node-local disk of your own, e.g. '$TMPDIR/tgsci'")
    p.add_argument("--print-job-script", action="store_true", help="print the sbatch script and exit (submits nothing)")
    args = p.parse_args(argv)

    settings = SlurmSettings(jobs=args.jobs, cores_per_job=args.cores, memory=args.memory, walltime=args.walltime,
                             queue=args.partition, account=args.account, python=args.python,
                             log_dir=Path(args.out_dir) / "slurm-logs", cache_dir=args.cache_dir)
    if args.print_job_script:
        cluster = start_cluster(settings)
        print(cluster.job_script())
        cluster.close()
        return 0
    try:
        result = run_sweep_on_slurm(args.spec, args.out_dir, settings, progress=True)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report_sweep(args.out_dir)
    print(f"{len(result.finished)} finished, {len(result.failed)} failed of {len(result.runs)} runs; "
          f"table: {Path(args.out_dir) / 'summary.csv'}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
