"""Pieces of self-contained HTML: escaped tables and images inlined as data URIs.

Reports and notebooks use them; nothing here loads from the network or writes files.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from pathlib import Path
from typing import Iterable, Optional


def html_table(rows: list[dict], columns: Optional[list[str]] = None, raw: Iterable[str] = (), css_class: str = "") -> str:
    """An HTML table; every cell escaped except the ``raw`` columns (images)."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    raw = set(raw)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            text = v if c in raw else html.escape(fmt(v))
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def fmt(v) -> str:
    """A cell: None empty, floats with 2 decimals (3 significant digits when small)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.2f}"
    return str(v)


def molecule_image(smiles: str, legend: str = "", size: tuple[int, int] = (240, 180)) -> str:
    """An ``<img>`` with the RDKit 2D drawing as an SVG data URI ('' if RDKit cannot parse it)."""
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles or "")
    if mol is None:
        return ""
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    options = drawer.drawOptions()
    options.legendFontSize = 14
    options.fixedBondLength = 28  # small molecules are not blown up to fill the box
    drawer.DrawMolecule(mol, legend=legend)
    drawer.FinishDrawing()
    return img("image/svg+xml", drawer.GetDrawingText().encode("utf-8"), alt=smiles, width=size[0])


def img(mime: str, data: bytes, alt: str = "", width: Optional[int] = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}" alt="{html.escape(alt)}"{w}>'


def png_file(path: Path, alt: str) -> str:
    """An ``<img>`` of a PNG file, or '' when the file does not exist."""
    return img("image/png", Path(path).read_bytes(), alt=alt) if Path(path).is_file() else ""


def figures(run_dir: Path, items: Iterable[tuple[str, str, str]]) -> str:
    """``<figure>``s for the (file, alt, caption) items that exist in ``run_dir``."""
    return "".join(f"<figure>{png_file(run_dir / name, alt)}<figcaption>{html.escape(caption)}</figcaption></figure>"
                   for name, alt, caption in items if (run_dir / name).is_file())


def drawn_png(draw, alt: str) -> str:
    """``draw(path)`` writes a PNG to a temporary file; returns it inlined."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return png_file(path, alt)
