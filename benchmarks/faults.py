"""Faults a shared cluster node produces, tried end to end through the CLI (``tgsci plan`` on TG119's fast
settings, a real dose engine): hostile LLM replies from an OpenAI-compatible endpoint, damaged and
squatted caches, a full disk, two writers on one run, a killed run, an unreachable LLM, names that
try to become paths, two processes building one dose matrix. Per case: what happened, and the
three figures the issue asks for: Python tracebacks printed, steps lost (recorded steps missing
after the resume that should have them), runs blocked (a run that cannot be finished by running
the same command again).

    python benchmarks/faults.py [--only NAME,...]

Starts one HTTP server on 127.0.0.1 (an ephemeral port, this script's own) that plays the LLM.
Prints one line per case; ``benchmarks/results/faults.txt`` is a copy of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HUGE = "9" * 4000
NESTED = "[" * 1000 + "]" * 1000
HOSTILE = {
    "1,000 nested brackets": '{"proposals": ' + NESTED + "}",
    "4,000-digit weight": '{"proposals": [{"weights": {"Core": ' + HUGE + "}}]}",
    "1 MB of text": "[{" * 500_000,
    "NUL bytes": '{"proposals": ["\x00\x00", {"weights": "\x00"}]}',
    "invalid UTF-8": b'{"proposals": ["\xff\xfe\xfd"]}'.decode("latin-1"),
    "prose, no JSON": "I think you should raise the weight of the core a little.",
}


class FakeLLM:
    """An OpenAI-compatible /v1/chat/completions that answers proposal requests with ``reply``."""

    def __init__(self):
        self.reply = '{"proposals": []}'
        self.calls = 0
        self.delay_s = 0.0  # per reply: a slow model, so a run can be killed mid-step
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                owner.calls += 1
                time.sleep(owner.delay_s)
                text = owner.reply if body.get("response_format") else "Raise the Core weight and lower the BODY weight."
                payload = {"id": "x", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", "m"),
                           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def tgsci(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tgsci.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def plan_args(run_dir: Path, steps: int, llm: FakeLLM | None = None, method: str = "tgd") -> list[str]:
    args = ["plan", "--case", "tg119", "--fast", "--steps", str(steps), "--proposals", "2", "--patience", "0",
            "--method", method, "--run-dir", str(run_dir)]
    if llm is not None:
        args += ["--model", "openai/fake", "--api-base", llm.url]
    return args


def steps_of(run_dir: Path) -> list[int]:
    from tgsci.record import RunRecord

    return [s.step for s in RunRecord.load(run_dir).steps]


def tracebacks(*outs: subprocess.CompletedProcess) -> int:
    return sum((o.stdout + o.stderr).count("Traceback") for o in outs)


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.cache = work / "cache"
        self.env = {**os.environ, "TGSCI_CACHE_DIR": str(self.cache), "OPENAI_API_KEY": "fake", "COLUMNS": "200",
                    "TGSCI_MAX_RETRIES": "0"}
        self.llm = FakeLLM()
        self.rows: list[tuple] = []

    def row(self, case: str, outcome: str, tb: int, lost: int, blocked: int, seconds: float) -> None:
        self.rows.append((case, outcome, tb, lost, blocked))
        print(f"{case:44s} tracebacks {tb}  steps lost {lost}  runs blocked {blocked}  {seconds:5.1f} s  {outcome}", flush=True)

    def hostile(self) -> None:
        for name, reply in HOSTILE.items():
            t0 = time.perf_counter()
            self.llm.reply = reply
            run = self.work / f"hostile-{len(self.rows)}"
            first = tgsci(plan_args(run, 2, self.llm), self.env)
            self.llm.reply = json.dumps({"proposals": [{"weights": {"OuterTarget": 120, "Core": 80, "BODY": 40}}]})
            again = tgsci(plan_args(run, 3, self.llm), self.env)  # resumed with a sane model: must finish
            steps = steps_of(run)
            rejected = sum(len(s.failures) for s in __import__("tgsci.record", fromlist=["RunRecord"]).RunRecord.load(run).steps[1:3])
            ok = first.returncode == 0 and again.returncode == 0
            self.row(f"reply: {name}", f"exit {first.returncode}/{again.returncode}, {rejected} rejected proposals recorded, "
                     f"steps {steps}", tracebacks(first, again), 4 - len(steps), 0 if ok and len(steps) == 4 else 1,
                     time.perf_counter() - t0)

    def damaged_caches(self) -> None:
        for damage in ("garbage", "truncated"):
            t0 = time.perf_counter()
            run = self.work / f"damaged-{damage}"
            first = tgsci(plan_args(run, 1, method="random"), self.env)
            db = self.cache / "dose" / "plan-results.sqlite"
            data = db.read_bytes() if db.exists() else b""
            for extra in (Path(str(db) + "-wal"), Path(str(db) + "-shm")):
                extra.unlink(missing_ok=True)
            db.write_bytes(b"garbage " * 512 if damage == "garbage" else data[: len(data) // 3])
            again = tgsci(plan_args(run, 2, method="random"), self.env)
            aside = sorted(p.name for p in db.parent.glob("plan-results.sqlite.damaged-*"))
            ok = again.returncode == 0 and steps_of(run) == [0, 1, 2]
            self.row(f"plan result cache: {damage}", f"exit {again.returncode}, set aside: {len(aside)} file(s)",
                     tracebacks(first, again), 3 - len(steps_of(run)), 0 if ok else 1, time.perf_counter() - t0)

    def full_disk(self) -> None:
        t0 = time.perf_counter()
        mount = self.work / "small"
        mount.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
            self.row("full disk (2 MB tmpfs cache)", "skipped: cannot mount tmpfs (not root?)", 0, 0, 0, 0.0)
            return
        try:
            env = {**self.env, "TGSCI_CACHE_DIR": str(mount / "cache")}
            run = self.work / "full-disk"
            out = tgsci(plan_args(run, 2, method="random"), env)
            ok = out.returncode == 0 and steps_of(run) == [0, 1, 2]
            said = "could not cache the influence matrix" in out.stderr + out.stdout
            self.row("full disk (2 MB tmpfs cache)", f"exit {out.returncode}, warned: {said}", tracebacks(out),
                     3 - len(steps_of(run)) if run.exists() else 3, 0 if ok else 1, time.perf_counter() - t0)
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)

    def squatted(self) -> None:
        t0 = time.perf_counter()
        squat = self.work / "squat"
        squat.mkdir()
        os.chown(squat, 65534, 65534)
        out = tgsci(plan_args(self.work / "squatted-run", 1, method="random"), {**self.env, "TGSCI_CACHE_DIR": str(squat)})
        named = "belongs to" in out.stderr + out.stdout
        self.row("cache directory owned by another user", f"refused: exit {out.returncode}, owner named: {named}",
                 tracebacks(out), 0, 0, time.perf_counter() - t0)

    def two_writers(self) -> None:
        t0 = time.perf_counter()
        run = self.work / "two-writers"
        self.llm.reply = json.dumps({"proposals": [{"weights": {"OuterTarget": 130, "Core": 90, "BODY": 30}}]})
        first = subprocess.Popen([sys.executable, "-m", "tgsci.cli", *plan_args(run, 6, self.llm)], env=self.env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not (run / ".run.holder.json").exists() and first.poll() is None:
            time.sleep(0.05)
        second = tgsci(plan_args(run, 6, self.llm), self.env)
        out, err = first.communicate(timeout=600)
        steps = steps_of(run)
        refused = second.returncode != 0 and "in use by PID" in second.stderr + second.stdout
        ok = first.returncode == 0 and steps == list(range(7))
        self.row("two CLI runs on one run directory", f"second refused naming the holder: {refused}; first finished {steps}",
                 tracebacks(second) + (out + err).count("Traceback"), 7 - len(steps), 0 if ok else 1, time.perf_counter() - t0)

    def killed(self) -> None:
        t0 = time.perf_counter()
        run = self.work / "killed"
        self.llm.delay_s = 0.5
        proc = subprocess.Popen([sys.executable, "-m", "tgsci.cli", *plan_args(run, 6, self.llm)], env=self.env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and len(steps_of(run) if (run / "config.json").exists() else []) < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.llm.delay_s = 0.0
        before = steps_of(run)
        again = tgsci(plan_args(run, 6, self.llm), self.env)  # the dead holder's lock is taken over
        steps = steps_of(run)
        ok = again.returncode == 0 and steps == list(range(7))
        self.row("run killed (SIGKILL) mid-run, resumed", f"{len(before)} steps before the kill; took over the lock: "
                 f"{'took over' in again.stderr}; after resume {steps}", tracebacks(again), 7 - len(steps), 0 if ok else 1,
                 time.perf_counter() - t0)

    def unreachable(self) -> None:
        t0 = time.perf_counter()
        run = self.work / "unreachable"
        args = plan_args(run, 8) + ["--model", "openai/fake", "--api-base", "http://127.0.0.1:9/v1"]
        out = tgsci(args, self.env)
        recorded = steps_of(run)
        resumed = tgsci(plan_args(run, 8, self.llm), self.env)  # the endpoint is back: the same run goes on
        steps = steps_of(run)
        ok = out.returncode == 3 and resumed.returncode == 0 and steps == list(range(9))
        self.row("LLM unreachable, then back", f"exit {out.returncode} after steps {recorded}, endpoint named: "
                 f"{'127.0.0.1:9' in out.stdout + out.stderr}; resumed: exit {resumed.returncode}, steps 0-{steps[-1]}",
                 tracebacks(out, resumed), 9 - len(steps), 0 if ok else 1, time.perf_counter() - t0)

    def names(self) -> None:
        from tgsci.sweep.spec import load_spec

        t0 = time.perf_counter()
        cases = self.work / "cases"
        cases.mkdir()
        text = (ROOT / "targets" / "cases" / "tg119.toml").read_text().replace('name = "tg119"', 'name = "../../../escape"')
        (cases / "mine.toml").write_text(text)
        sweeps = self.work / "sweeps"
        sweeps.mkdir()
        spec_file = sweeps / "s.toml"
        spec_file.write_text(f'[sweep]\nkind = "plan"\ncases = ["../cases/mine.toml", "{cases / "mine.toml"}"]\n'
                             'method = "random"\n[plan]\nfast = true\n[budget]\nmax_steps = 1\n')
        out = self.work / "sweep-out"
        proc = subprocess.run([sys.executable, "-m", "tgsci.cli", "sweep", str(spec_file), "--out", str(out), "--workers", "1"],
                              capture_output=True, text=True, env=self.env, cwd=self.work, timeout=900)
        inside = all(p.resolve().parent == out.resolve() for p in out.iterdir()) if out.exists() else False
        escaped = [p for p in self.work.rglob("*escape*") if self.cache not in p.parents and out not in p.parents
                   and (self.work / "cases") not in p.parents]
        spec = load_spec(spec_file)
        self.row("sweep with ../ and absolute case paths", f"exit {proc.returncode}, {len(spec.subjects)} subject, run dirs inside --out: "
                 f"{inside}, files outside --out and the cache: {len(escaped)}", tracebacks(proc), 0,
                 0 if proc.returncode == 0 and inside and not escaped else 1, time.perf_counter() - t0)

    def parallel_build(self) -> None:
        t0 = time.perf_counter()
        code = ("import sys; from pathlib import Path; from simulators.dose.cases import load_case\n"
                "from simulators.dose.matrix import load_or_build\n"
                "data, _ = load_or_build(load_case('tg119', fast=True), Path(sys.argv[1]), check_mem=False)\n"
                "print(data.source)")
        env = {**self.env, "PYTHONPATH": str(ROOT)}
        procs = [subprocess.Popen([sys.executable, "-c", code, str(self.work / "dose-race")], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=900) for p in procs]
        sources = sorted(o[0].strip() for o in outs)
        self.row("3 processes, one uncached dose matrix", f"sources {sources} (one build)", sum(e.count("Traceback") for _, e in outs),
                 0, 0 if sources == ["built", "cache", "cache"] else 1, time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated case groups: " + ", ".join(GROUPS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tgsci-faults-") as tmp:
        bench = Bench(Path(tmp))
        t0 = time.perf_counter()
        warm = tgsci(plan_args(bench.work / "warm-up", 0, method="random"), bench.env)  # builds the fast TG119 matrix once
        print(f"warm-up (dose matrix build): exit {warm.returncode}, {time.perf_counter() - t0:.1f} s", flush=True)
        for group in (args.only.split(",") if args.only else GROUPS):
            getattr(bench, group)()
        rows = bench.rows
        print(f"\n{len(rows)} cases tried: tracebacks {sum(r[2] for r in rows)}, steps lost {sum(r[3] for r in rows)}, "
              f"runs blocked {sum(r[4] for r in rows)}")


GROUPS = ("hostile", "damaged_caches", "full_disk", "squatted", "two_writers", "killed", "unreachable", "names", "parallel_build")

if __name__ == "__main__":
    main()
