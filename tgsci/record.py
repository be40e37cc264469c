"""The run record: a run directory's config, steps and summary, read and written here only.

Like Optuna's storage for a study: the loop appends, sweeps and reports read, nothing else
touches these three files::

    config.json       RunConfig   what ran: objective fingerprint (goals as data), start, method, budget, spec
    trajectory.jsonl  StepRecord  one fsynced JSON line per step (step 0 = the start)
    summary.json      RunSummary  best, start, stop reason, usage, references, output files

A killed writer leaves at most one torn last line in ``trajectory.jsonl``; it is skipped on
read and cut before the next append, so a run can always be resumed from what was completely
written. JSON files are replaced atomically. Records carry their format number; one written by
another format is refused with the version that wrote it, never misread.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from simulators.files import read_json, write_json_atomic

from .engine import Usage
from .objectives.base import Confirmation, Evaluation
from .optim import ProposalFailure
from .version import __version__

RECORD_FORMAT = 2
CONFIG, TRAJECTORY, SUMMARY = "config.json", "trajectory.jsonl", "summary.json"


class RunDirError(RuntimeError):
    """The directory holds another run, a record of another format, or cannot be written."""


@dataclass
class RunConfig:
    objective: dict  # Objective.fingerprint(): what a resumed run must match
    start: str
    method: dict  # Proposer.describe()
    seed: int = 0
    budget: dict = field(default_factory=dict)
    spec: Optional[dict] = None  # the objective spec it was built from (tgsci.domains), if any
    tgsci_version: str = __version__
    record_format: int = RECORD_FORMAT

    @property
    def kind(self) -> str:
        return self.objective.get("kind", "objective")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class StepRecord:
    step: int
    current: Evaluation
    best: Evaluation
    candidates: list[Evaluation] = field(default_factory=list)
    loss: str = ""  # the simulator's numbers in words, as the LLM read them
    feedback: str = ""  # the textual gradient
    failures: list[ProposalFailure] = field(default_factory=list)  # rejected proposals with reasons
    replies: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: dict = field(default_factory=dict)
    error: Optional[str] = None  # why the step produced nothing (e.g. the LLM was unreachable)
    time: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StepRecord":
        return cls(
            step=int(data["step"]), current=Evaluation.from_dict(data["current"]), best=Evaluation.from_dict(data["best"]),
            candidates=[Evaluation.from_dict(c) for c in data.get("candidates") or []],
            loss=data.get("loss") or "", feedback=data.get("feedback") or "",
            failures=[ProposalFailure(f.get("text", ""), f.get("reason", "")) for f in data.get("failures") or []],
            replies=list(data.get("replies") or []), usage=Usage(**(data.get("usage") or {})),
            timings=dict(data.get("timings") or {}), error=data.get("error"), time=float(data.get("time") or 0.0),
        )


@dataclass
class RunSummary:
    start: Evaluation
    best: Evaluation
    steps: int
    evaluations: int  # candidates that reached the simulator
    stop_reason: str
    usage: Usage = field(default_factory=Usage)
    references: list[tuple[str, Evaluation]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    finished: bool = True
    confirmed: Optional[Confirmation] = None  # best candidates and references re-simulated (objectives.base.Confirms)
    pareto: Optional[dict] = None  # Pareto mode (tgsci.pareto.ParetoTracker.summary)
    evaluations_to_goals: Optional[int] = None  # simulations until the first design meeting every goal (None: never, or no goals)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["references"] = [{"name": name, **ev.to_dict()} for name, ev in self.references]
        data["confirmed"] = self.confirmed.to_dict() if self.confirmed else None
        return data

    @property
    def compared(self) -> tuple[Optional[Evaluation], list[tuple[str, Evaluation]]]:
        """(best, references) as reports compare them: the confirmed numbers when the run has them."""
        if self.confirmed and self.confirmed.best is not None:
            return self.confirmed.best, self.confirmed.references or self.references
        return self.best, self.references

    @classmethod
    def from_dict(cls, data: dict) -> "RunSummary":
        return cls(
            start=Evaluation.from_dict(data["start"]), best=Evaluation.from_dict(data["best"]),
            steps=int(data.get("steps") or 0), evaluations=int(data.get("evaluations") or 0),
            stop_reason=str(data.get("stop_reason") or ""), usage=Usage(**(data.get("usage") or {})),
            references=[(r["name"], Evaluation.from_dict(r)) for r in data.get("references") or []],
            outputs=list(data.get("outputs") or []), finished=bool(data.get("finished")),
            confirmed=Confirmation.from_dict(data["confirmed"]) if data.get("confirmed") else None,
            pareto=data["pareto"] if isinstance(data.get("pareto"), dict) else None,
            evaluations_to_goals=int(data["evaluations_to_goals"]) if isinstance(data.get("evaluations_to_goals"), int) else None,
        )


class RunRecord:
    """One run directory. ``RunRecord.open(path, config)`` to write (creates or resumes);
    ``RunRecord.load(path)`` to read (reports, sweeps)."""

    def __init__(self, path: Path, config: RunConfig, steps: list[StepRecord], summary: Optional[RunSummary]):
        self.path = Path(path)
        self.config = config
        self.steps = steps
        self.summary = summary

    # ------------------------------------------------------------------ open and read
    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunRecord":
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise RunDirError(f"{path} is not a run directory (no {CONFIG})")
        config = _read_config(path)
        summary = None
        if (path / SUMMARY).is_file():
            try:
                summary = RunSummary.from_dict(read_json(path / SUMMARY))
            except (OSError, ValueError, KeyError, TypeError):
                summary = None  # a summary that cannot be read: the run is treated as unfinished
        steps = [StepRecord.from_dict(d) for d in read_jsonl(path / TRAJECTORY)]
        return cls(path, config, steps, summary)

    @classmethod
    def open(cls, path: str | os.PathLike, config: RunConfig) -> "RunRecord":
        """Create a run directory or reopen it to resume; refuse one of another run or format."""
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {path}: {exc}") from None
        if not (path / CONFIG).exists():
            write_json_atomic(path / CONFIG, config.to_dict())
            return cls(path, config, [], None)
        record = cls.load(path)
        old = record.config
        for key in ("objective", "start"):
            if getattr(old, key) != getattr(config, key):
                raise RunDirError(f"{path} holds a run with a different {key} ({getattr(old, key)!r}); use another --run-dir or delete it")
        if old.method.get("method") != config.method.get("method"):
            raise RunDirError(f"{path} holds a {old.method.get('method')} run, not {config.method.get('method')}")
        if old.budget != config.budget and record.summary is not None:
            record.summary.finished = False  # a new budget extends a finished run
        record.config = config
        write_json_atomic(path / CONFIG, config.to_dict())
        return record

    @property
    def finished(self) -> bool:
        return self.summary is not None and self.summary.finished

    # ------------------------------------------------------------------ write
    def append(self, step: StepRecord) -> None:
        append_jsonl(self.path / TRAJECTORY, step.to_dict())
        self.steps.append(step)

    def finish(self, summary: RunSummary) -> None:
        self.summary = summary
        write_json_atomic(self.path / SUMMARY, summary.to_dict())

    # ------------------------------------------------------------------ views
    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def start(self) -> Optional[Evaluation]:
        if self.summary:
            return self.summary.start
        return self.steps[0].best if self.steps else None

    @property
    def best(self) -> Optional[Evaluation]:
        if self.summary:
            return self.summary.best
        return self.steps[-1].best if self.steps else None

    @property
    def references(self) -> list[tuple[str, Evaluation]]:
        return self.summary.references if self.summary else []

    def candidates(self) -> list[tuple[int, Evaluation]]:
        """(step, evaluation) of every candidate once, at the first step it appeared."""
        seen, out = set(), []
        for rec in self.steps:
            for c in rec.candidates:
                if c.value not in seen:
                    seen.add(c.value)
                    out.append((rec.step, c))
        return out

    def evaluations(self) -> int:
        return sum(1 for rec in self.steps for c in rec.candidates if c.simulated)

    def usage(self) -> Usage:
        if self.summary:
            return self.summary.usage
        total = Usage()
        for rec in self.steps:
            total.add(rec.usage)
        return total

    def timings(self) -> dict:
        total: dict = {}
        for rec in self.steps:
            for k, v in rec.timings.items():
                if isinstance(v, (int, float)):
                    total[k] = total.get(k, 0) + v
        return total


def run_state(path: str | os.PathLike, budget: Optional[dict] = None) -> tuple[str, Optional[RunRecord]]:
    """(state, record) of a run directory: finished | engine_error | interrupted | new.

    A finished run asked again with another ``budget`` is ``interrupted`` (optimize extends it).
    """
    path = Path(path)
    if not (path / CONFIG).is_file():
        return ("interrupted" if (path / TRAJECTORY).exists() else "new"), None
    record = RunRecord.load(path)
    if record.finished:
        if record.summary.stop_reason.startswith("engine_error"):
            return "engine_error", record
        if budget is not None and any(record.config.budget.get(k) != v for k, v in budget.items()):
            return "interrupted", record
        return "finished", record
    return ("interrupted" if record.steps else "new"), record


def set_aside_summary(path: str | os.PathLike) -> Optional[Path]:
    """Make a finished run resumable (one that stopped on LLM errors): its summary is kept as
    ``summary.engine_error.N.json`` and ``optimize()`` continues from the trajectory."""
    summary = Path(path) / SUMMARY
    if not summary.exists():
        return None
    n = 1
    while (Path(path) / f"summary.engine_error.{n}.json").exists():
        n += 1
    kept = Path(path) / f"summary.engine_error.{n}.json"
    os.replace(summary, kept)
    return kept


def _read_config(path: Path) -> RunConfig:
    try:
        data = read_json(path / CONFIG)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path / CONFIG} cannot be read: {exc}") from None
    fmt = data.get("record_format", 1)
    if fmt != RECORD_FORMAT:
        raise RunDirError(
            f"{path} was written by tgsci {data.get('tgsci_version', '?')} (run record format {fmt}); "
            f"tgsci {__version__} reads format {RECORD_FORMAT} only. Resume it with tgsci {data.get('tgsci_version', '?')}, "
            f"or start a new run in another directory"
        )
    return RunConfig.from_dict(data)


# ---------------------------------------------------------------------- the append-only JSONL file
def append_jsonl(path: Path, record: dict) -> None:
    """Append one record as a single write of a full line, then fsync."""
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    path = Path(path)
    _drop_torn_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_torn_tail(path: Path) -> None:
    """Remove a partial last line left by a killed writer, so the next append starts clean."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - 4 * 2**20)  # a step line is KBs; the last 4 MB hold the last line whole
        handle.seek(start)
        content = handle.read()
        cut = content.rfind(b"\n") + 1  # drop a torn tail (no newline) ...
        if cut == len(content):  # ... or a complete last line that does not read (read_jsonl skips it too)
            before = content.rfind(b"\n", 0, len(content) - 1) + 1
            try:
                json.loads(content[before:].decode("utf-8"))
                return
            except (ValueError, RecursionError):
                cut = before
        handle.truncate(start + cut)


def read_jsonl(path: Path) -> Iterator[dict]:
    """Complete records only: a torn or corrupt last line is skipped; a corrupt line before the
    last one is damage a resume must not paper over, reported with its line number (RunDirError)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: b"" after a final newline, else a torn line
    for number, line in enumerate(complete, 1):
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:
            if number == len(complete) and not tail:
                return  # a corrupt last line: treated like a torn one
            raise RunDirError(f"{path} line {number} is corrupt ({type(exc).__name__}: {str(exc)[:120]}); "
                              f"the lines after it cannot be trusted: fix or remove that line to resume") from None
        yield record
