"""The result of simulating one candidate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional


@dataclass
class Measurement:
    """Numbers for one candidate; ``error`` says why there are none. Artifacts are text files (poses)."""

    candidate: str
    metrics: dict = field(default_factory=dict)
    error: Optional[str] = None
    artifacts: dict = field(default_factory=dict)
    cached: bool = False
    seconds: float = 0.0

    @property
    def valid(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return asdict(self)
