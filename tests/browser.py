"""Headless Chromium for the report tests: does the page load offline with every image decoded?

The test injects a probe script into a *copy* of the page (the product's HTML has no script),
lets Chromium load it from disk with networking off, and reads the probe's verdict from the
DOM Chromium dumps. Chromium comes from Debian's ``chromium`` package (``dev.py`` installs it
on Debian when run as root); ``TGSCI_CHROMIUM`` points to another build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
    # the page must not need the network: refuse every host
    "--host-resolver-rules=MAP * ~NOTFOUND",
]

PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; }).length;
  document.title = 'PROBE images ' + ok + '/' + imgs.length + ' sections ' + document.querySelectorAll('section').length;
});
</script>"""


def chromium() -> str:
    path = os.environ.get("TGSCI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("headless Chromium is needed to check the HTML report: `apt-get install chromium` "
                    "(python3 dev.py test does it on Debian as root) or set TGSCI_CHROMIUM")
    return path


def render(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 2400) -> dict:
    """Load ``page`` (a copy with the probe) and return {'ok', 'total', 'sections'}; optionally a PNG."""
    text = Path(page).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / "probed.html"
        probed.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        base = [chromium(), *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--window-size={width},{height}"]
        dom = subprocess.run(base + ["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                             capture_output=True, text=True, timeout=120)
        if screenshot is not None:
            subprocess.run(base + [f"--screenshot={screenshot}", probed.as_uri()], capture_output=True, timeout=120, check=True)
    m = re.search(r"<title>PROBE images (\d+)/(\d+) sections (\d+)</title>", dom.stdout)
    assert m, f"Chromium did not run the page's load event; stderr: {dom.stderr[-800:]}"
    return {"ok": int(m[1]), "total": int(m[2]), "sections": int(m[3])}
