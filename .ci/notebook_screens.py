#!/usr/bin/env python3
"""Each notebook as a reader sees it: exported to HTML (nbconvert) and opened in headless
Chromium, which must give every output image and SVG a visible size; a full-page screenshot
per notebook is kept for a person to look at.

    .ci/notebooks                         # runs this on every notebook it executed
    python3 .ci/notebook_screens.py notebooks/*.ipynb   # on the committed notebooks (needs
                                          # nbconvert, and chromium from the distribution)
    python3 .ci/notebook_screens.py --self-check        # shows that the check can fail

Writes target/notebook-screens/NAME.html and NAME.png. The sizes are measured by a script added
to the page: Chromium runs it once the page has settled (`--virtual-time-budget`) and it writes
what it found into the page, which `--dump-dom` returns; the screenshot is then taken with the
window as tall as the page (capped at MAX_HEIGHT pixels).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "notebook-screens"
WIDTH = 1280
MAX_HEIGHT = 30000

# Every output image and top-level SVG, with its rendered box; the page's height.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const found = [];
  document.querySelectorAll(".jp-OutputArea-output img, .jp-OutputArea-output svg").forEach((e) => {
    if (e.tagName.toLowerCase() === "svg" && e.parentElement.closest("svg")) return;
    const r = e.getBoundingClientRect();
    const cell = e.closest(".jp-Cell");
    const index = cell ? Array.from(document.querySelectorAll(".jp-Cell")).indexOf(cell) : -1;
    found.push({cell: index, tag: e.tagName.toLowerCase(), width: r.width, height: r.height});
  });
  const pre = document.createElement("pre");
  pre.id = "massivetext-measure";
  pre.textContent = JSON.stringify({
    images: found,
    height: document.documentElement.scrollHeight,
  });
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(
        "notebook screens: no Chromium found; install it with "
        "`apt-get install -y --no-install-recommends chromium`"
    )


def browser(args: list[str]) -> str:
    cmd = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--virtual-time-budget=15000",
        *args,
    ]
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            cmd + [f"--user-data-dir={profile}"],
            capture_output=True,
            text=True,
            timeout=180,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-800:]}")
    return done.stdout


def html_of(nb) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body.replace("</body>", MEASURE + "</body>")


def screen(nb, name: str) -> list[str]:
    """Exports `nb` as target/notebook-screens/NAME.html, measures its outputs and takes its
    screenshot NAME.png; returns the problems found."""
    OUT.mkdir(parents=True, exist_ok=True)
    page = OUT / f"{name}.html"
    page.write_text(html_of(nb))
    dom = browser(["--dump-dom", page.as_uri()])
    m = re.search(r'<pre id="massivetext-measure">(.*?)</pre>', dom, re.S)
    if not m:
        return ["the page's measuring script did not run (no result in Chromium's DOM)"]
    measured = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    problems = [
        f"cell {i['cell']}: an output <{i['tag']}> renders {i['width']:.0f} x {i['height']:.0f} px"
        for i in measured["images"]
        if i["width"] < 1 or i["height"] < 1
    ]
    height = min(max(int(measured["height"]), 600), MAX_HEIGHT)
    shot = OUT / f"{name}.png"
    browser([f"--window-size={WIDTH},{height}", f"--screenshot={shot}", page.as_uri()])
    if not shot.is_file() or shot.stat().st_size == 0:
        problems.append(f"no screenshot was written to {shot.relative_to(ROOT)}")
    images = len(measured["images"])
    print(f"     screen: {images} images, page {measured['height']} px -> {shot.relative_to(ROOT)}")
    return problems


def self_check() -> None:
    """The check can fail: a notebook with one drawn SVG and one image that renders at zero
    size must give exactly one problem, naming the image's cell."""
    good = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30"/></svg>'
    broken = '<img src="data:image/png;base64," style="width:0;height:0">'
    nb = nbformat.v4.new_notebook()
    for i, html in enumerate([good, broken]):
        cell = nbformat.v4.new_code_cell(f"cell_{i}()", execution_count=i + 1)
        cell.outputs = [
            nbformat.v4.new_output("execute_result", data={"text/html": html}, execution_count=i + 1)
        ]
        nb.cells.append(cell)
    problems = screen(nb, "self-check")
    if len(problems) != 1 or "cell 1" not in problems[0]:
        raise SystemExit(f"notebook screens: the self-check expected one problem in cell 1, got {problems}")


def main() -> int:
    if sys.argv[1:] == ["--self-check"]:
        self_check()
        print("ok   the screen check finds a zero-size image")
        return 0
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    failed = 0
    for path in paths:
        problems = screen(nbformat.read(path, as_version=4), path.stem)
        print(f"{'FAIL' if problems else 'ok  '} {path.name}")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
