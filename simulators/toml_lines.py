"""Line numbers of tables and keys in a TOML text (tomllib reports lines only for syntax errors).

A path names a table as tomllib nests it, with the element number inside arrays of tables:
``("plan", "fast")``, ``("structures", 1, "objectives", 0)``; path + (key,) names a key in it.
Dotted keys and keys inside inline tables are found by their first part only.
"""

from __future__ import annotations

import re
from typing import Optional

_HEADER = re.compile(r"^\[(\[)?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^(["']?)([A-Za-z0-9_\-]+)\1\s*[=.]""")


def key_lines(text: str) -> dict[tuple, int]:
    """{path: line number} for every table header and every key of ``text``."""
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}  # array-of-tables path -> index of its latest element
    current: tuple = ()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = _HEADER.match(line)
        if header:
            names = [part.strip().strip("\"'") for part in header.group(2).split(".")]
            path: list = []
            for i, name in enumerate(names):
                path.append(name)
                key = tuple(path)
                if i == len(names) - 1 and header.group(1):
                    counts[key] = counts.get(key, -1) + 1
                    path.append(counts[key])
                elif key in counts:  # inside the latest element of an array of tables
                    path.append(counts[key])
            current = tuple(path)
            lines.setdefault(current, n)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(current + (key.group(2),), n)
    return lines


def line_of(lines: dict[tuple, int], path: tuple) -> Optional[int]:
    """The line of ``path``, else of the nearest enclosing table that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def dotted(path: tuple) -> str:
    """``("structures", 1, "objectives", 0, "kind")`` -> ``structures[1].objectives[0].kind``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
