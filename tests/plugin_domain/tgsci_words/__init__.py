"""A toy domain: the value is a lowercase string, the score its edit distance to the subject word.

Everything a domain needs, outside tgsci: its spec check, its objective (validate, evaluate in a
batch, verbalize, describe, a mutation operator for random search), its own output file.
"""

from __future__ import annotations

import csv
import random
import string
from pathlib import Path

from tgsci.domains import Domain, SpecError
from tgsci.objectives import Evaluation, InvalidCandidate, Objective


def distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions cost 1)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


class WordObjective(Objective):
    kind = "words"
    role_description = "a lowercase word"
    what = "word"

    def __init__(self, word: str, max_length: int):
        self.word, self.max_length = word, max_length

    def describe(self) -> str:
        return f"spell the hidden {len(self.word)}-letter word: the score is the edit distance to it"

    def validate(self, text: str) -> str:
        value = str(text).strip().lower()
        if not value or not all(c in string.ascii_lowercase for c in value):
            raise InvalidCandidate(f"{text!r} is not one lowercase word of the letters a-z")
        if len(value) > self.max_length:
            raise InvalidCandidate(f"{len(value)} letters; at most {self.max_length}")
        return value

    def evaluate(self, values: list[str]) -> list[Evaluation]:
        out, ok = self.screen(values)
        for i, value in ok:
            d = distance(value, self.word)
            out[i] = Evaluation(value, float(d), {"distance": d, "length": len(value)})
        return out

    def verbalize(self, ev: Evaluation, start, best, brief: bool = False) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "not a word")
        return f"edit distance {ev.metrics['distance']} to the hidden word (0 is the word itself; lower is better)"

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "word": self.word, "max_length": self.max_length}

    def neighbor(self, value: str, rng: random.Random) -> str:
        i = rng.randrange(len(value) + 1)
        letter = rng.choice(string.ascii_lowercase)
        move = rng.choice(["insert", "replace", "delete"] if len(value) > 1 else ["insert", "replace"])
        if move == "insert" and len(value) < self.max_length:
            return value[:i] + letter + value[i:]
        i = min(i, len(value) - 1)
        return value[:i] + ("" if move == "delete" else letter) + value[i + 1:]

    def write_outputs(self, run_dir, result) -> list[str]:
        path = Path(run_dir) / "words.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["word", "distance"])
            for ev in result.evaluations:
                if ev.valid:
                    writer.writerow([ev.value, ev.metrics["distance"]])
        return [path.name]


class WordsDomain(Domain):
    kind = "words"
    subject = "word"
    subjects_key = "words"
    option_keys = ("max_length",)
    methods = ("tgd", "random")
    shared_starts = True

    def check(self, spec: dict) -> dict:
        word = spec.get("word")
        if not isinstance(word, str) or not word.isalpha() or not word.islower():
            raise SpecError(f"word must be one lowercase word, not {word!r}", "word")
        max_length = spec.get("max_length", 12)
        if not isinstance(max_length, int) or max_length < len(word):
            raise SpecError(f"max_length must be a whole number >= {len(word)}, not {max_length!r}", "max_length")
        return {"kind": self.kind, "word": word, "max_length": max_length}

    def build(self, spec: dict) -> WordObjective:
        return WordObjective(spec["word"], spec["max_length"])

    def subjects(self, value, options: dict, base=None) -> list[str]:
        if not isinstance(value, list) or not value:
            raise SpecError("words must be a list of lowercase words")
        return [self.check({"word": w, **options})["word"] for w in value]

    def start(self, spec: dict, value) -> str:
        try:
            return self.build(spec).validate("a" if value in (None, "default") else value)
        except InvalidCandidate as exc:
            raise SpecError(f"start: {exc}") from None
