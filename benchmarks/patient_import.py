"""Your own patient: DICOM import time and dose-matrix build time and memory, clinical settings.

The synthetic prostate phantom is exported as a DICOM CT series + RTSTRUCT (shuffled, renamed,
a stray file: tests/test_patient.py), a case is written by ``case init``, and each step is timed
in a fresh process (peak memory = that process's max RSS): header checks, import (CT + RTSTRUCT
to masks), and the influence-matrix build, side by side with the same case built from its TOML
phantom, and the build estimate tgsci makes beforehand against what the build measured.

    python benchmarks/patient_import.py [--fast]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEP = r"""
import json, resource, sys, time, warnings
sys.path[:0] = [{root!r}, {tests!r}]
warnings.simplefilter("ignore")
from simulators.dose.cases import load_case
from simulators.dose.matrix import _structure_dicts, build
from simulators.dose.phantoms import load_phantom
what, case_ref, fast = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
t0 = time.perf_counter()
case = load_case(case_ref, fast=fast)
t_checks = time.perf_counter() - t0
t0 = time.perf_counter()
ct, cst, info = load_phantom(case.phantom, _structure_dicts(case))
t_import = time.perf_counter() - t0
out = {{"checks_s": t_checks, "import_s": t_import, "ct": list(ct.cube_hu.GetSize())}}
if what == "build":
    t0 = time.perf_counter()
    data, _ = build(case)
    out.update(build_s=time.perf_counter() - t0, nnz=int(data.matrix.nnz), shape=list(data.meta["full_shape"]), estimate=data.meta["estimate"])
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(out))
"""


def run(what: str, case: str, fast: bool) -> dict:
    code = STEP.format(root=str(ROOT), tests=str(ROOT / "tests"))
    done = subprocess.run([sys.executable, "-c", code, what, case, "1" if fast else "0"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true", help="the case's fast settings instead of clinical ones")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from test_patient import export_patient

    from simulators.dose.protocols import init_case

    work = Path(tempfile.mkdtemp(prefix="tgsci-patient-bench-"))
    export_patient("prostate", work / "dicom", rename={"FemHead_L": "Femur_Head_L"})
    init_case(work / "dicom", "prostate", work / "case.toml")
    n_files = len(list((work / "dicom").iterdir()))
    settings = "fast" if args.fast else "clinical"
    imported = run("build", str(work / "case.toml"), args.fast)
    toml = run("build", "prostate", args.fast)
    print(f"synthetic prostate exported as DICOM ({n_files} files), case written by case init; {settings} settings")
    print(f"{'':28s}{'DICOM patient':>16s}{'TOML phantom':>16s}")
    print(f"{'header checks (s)':28s}{imported['checks_s']:16.2f}{toml['checks_s']:16.2f}")
    print(f"{'import to masks (s)':28s}{imported['import_s']:16.2f}{toml['import_s']:16.2f}")
    print(f"{'influence matrix build (s)':28s}{imported['build_s']:16.1f}{toml['build_s']:16.1f}")
    print(f"{'peak memory (GB, max RSS)':28s}{imported['peak_rss_gb']:16.2f}{toml['peak_rss_gb']:16.2f}")
    print(f"{'matrix':28s}{str(imported['shape']):>16s}{str(toml['shape']):>16s}")
    est = imported["estimate"]
    print(f"\nbuild estimate made before the build (DICOM patient): {est['nonzeros']:,} non-zeros (measured {imported['nnz']:,}, "
          f"ratio {est['nonzeros'] / imported['nnz']:.2f}), {est['memory_gb']:.2f} GB (measured peak {imported['peak_rss_gb']:.2f}), "
          f"{est['seconds']:.0f} s (measured {imported['build_s']:.0f} s)")


if __name__ == "__main__":
    main()
