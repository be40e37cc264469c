"""Protein targets: the manifest in ``targets/`` joined with the receptor files shipped by dockstring."""

from __future__ import annotations

import difflib
import importlib.util
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent.parent / "targets" / "dockstring_targets.toml"


class UnknownTargetError(ValueError):
    pass


@dataclass(frozen=True)
class ReferenceDrug:
    name: str
    smiles: str
    formula: str
    source: str


@dataclass(frozen=True)
class Target:
    name: str
    receptor_file: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    references: tuple[ReferenceDrug, ...] = field(default_factory=tuple)

    @property
    def receptor_path(self) -> Path:
        return dockstring_targets_dir() / self.receptor_file


def dockstring_targets_dir() -> Path:
    spec = importlib.util.find_spec("dockstring")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dockstring package (receptor files) is not installed: pip install dockstring==0.3.4")
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "targets"


@lru_cache(maxsize=1)
def load_manifest() -> dict[str, Target]:
    with open(MANIFEST, "rb") as handle:
        data = tomllib.load(handle)
    targets = {}
    for name, entry in data["targets"].items():
        refs = tuple(ReferenceDrug(**r) for r in entry.get("references", []))
        targets[name] = Target(name, entry["receptor"], tuple(entry["center"]), tuple(entry["size"]), refs)
    return targets


def target_names() -> list[str]:
    return sorted(load_manifest())


def get_target(name: str) -> Target:
    """The target called ``name`` (case-insensitive); the error lists valid names."""
    targets = load_manifest()
    key = str(name).strip().upper()
    if key in targets:
        return targets[key]
    close = difflib.get_close_matches(key, targets, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownTargetError(f"unknown target {name!r}.{hint} Valid targets: {', '.join(sorted(targets))}")
