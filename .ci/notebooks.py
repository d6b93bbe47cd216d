#!/usr/bin/env python3
"""Executes the notebooks under Jupyter with the evcxr kernel and checks every cell positively.

Run through `.ci/notebooks` (which installs the kernel and this script's Python packages):

    .ci/notebooks                       # run every notebooks/*.ipynb, compare with the committed ones
    .ci/notebooks --refresh             # the same with full settings (MASSIVETEXT_QUICK=0), then
                                        # write the fresh outputs into the notebooks: the
                                        # committed outputs are those of full runs
    .ci/notebooks notebooks/01-quickstart.ipynb   # only these
    .ci/notebooks --prepare             # install, then run only the first notebook's `:dep` cell
                                        # (warms the kernel's build folder; .ci/run starts this
                                        # early, beside the Rust checks)
    python3 .ci/notebooks.py --committed    # no kernel: the checks of outputs (charts, values)
                                        # on the outputs committed in the notebooks

evcxr ends a cell that panicked, or whose `?` met an `Err`, with status "ok" and nothing but
stderr text (which it sometimes loses), so a cell passes only when all of these hold:

- no `error` output (compile errors and kernel errors arrive as one);
- no "panicked at" in any stream, and nothing on stderr unless the cell is tagged `allow-stderr`
  (a `?` on an `Err` prints the error's message to stderr and nothing else);
- the cell finished: the runner adds `let __massivetext_cell_N: u32 = N;` to the code the kernel
  runs (never to the notebook) and asks the kernel's `:vars` afterwards. evcxr stores a cell's new
  variables only when the whole cell ran, so a panic or an early `?` return loses it, even when
  its stderr text was lost;
- a cell tagged `expect-svg` has an `image/svg+xml` output, one tagged `expect-html` a
  `text/html` output, one tagged `expect-stdout` some stdout;
- every chart has content: an SVG output has data marks (points of a plotted series, heat-map
  cells, scatter points or paths: at least 3), not only a background, axes and text; a PNG output
  decodes and is not one flat colour;
- what a cell states holds: each regular expression in the cell's metadata
  `massivetext.expect` matches its stdout (multi-line); one with the named groups `lo` and `hi`
  also needs the number matched by `lo` below the one matched by `hi` (a loss that falls, ours
  against a baseline). `same logits: true` fails on `false`; `BLEU ours (\S+) sacrebleu \1`
  fails when the two numbers differ. The expectations also check that the notebook ran on the
  real data (a notebook that falls back to generated data or an untrained model says so, and its
  expectation then fails).

Each executed notebook is then exported to HTML and opened in headless Chromium
(.ci/notebook_screens.py): every output image and SVG must render with a visible size, and a
full-page screenshot is kept in target/notebook-screens/ for a person to look at.

A notebook passes when every cell passes and, without `--refresh`, its structure matches the
committed file: the same cells (type and source), and for each code cell the same kinds of rich
output (MIME types). Outputs are compared by kind, never byte for byte (timings and losses vary).
"""
from __future__ import annotations

import argparse
import base64
import copy
import os
import re
import struct
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebook_screens  # noqa: E402  (beside this file)

ROOT = Path(__file__).resolve().parent.parent
RICH = ("image/svg+xml", "text/html", "image/png")
TAG_MIME = {"expect-svg": "image/svg+xml", "expect-html": "text/html"}


def source_of(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def is_command_only(src: str) -> bool:
    """A cell of evcxr commands (`:dep`, `:opt`...) and comments only: nothing to run."""
    for line in src.splitlines():
        s = line.strip()
        if s and not s.startswith(":") and not s.startswith("//"):
            return False
    return True


def with_sentinel(src: str, index: int) -> tuple[str, str | None]:
    """The cell's code with a sentinel variable after its leading `:` command lines."""
    if is_command_only(src):
        return src, None
    name = f"__massivetext_cell_{index}"
    lines = src.splitlines()
    at = 0
    while at < len(lines) and (lines[at].strip().startswith(":") or not lines[at].strip()):
        at += 1
    lines.insert(at, f"#[allow(unused_variables)] let {name}: u32 = {index};")
    return "\n".join(lines), name


def stream_text(cell, name: str) -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == name
    )


def rich_kinds(cell) -> set[str]:
    kinds = set()
    for o in cell.get("outputs", []):
        if o.get("output_type") in ("display_data", "execute_result"):
            kinds.update(k for k in o.get("data", {}) if k in RICH)
    return kinds


MARK_MIN = 3


def svg_marks(svg: str) -> int:
    """Data marks in a chart: the points of each plotted series (a polyline of 3 or more points;
    axes and ticks are 2-point lines), heat-map cells (rects carrying `data-v`), circles and
    paths. Backgrounds, grid lines and text are not marks."""
    root = ET.fromstring(svg)
    marks = 0
    for e in root.iter():
        tag = e.tag.rsplit("}", 1)[-1]
        if tag == "polyline":
            points = len(e.get("points", "").split())
            marks += points if points >= 3 else 0
        elif tag == "rect" and "data-v" in e.attrib:
            marks += 1
        elif tag in ("circle", "path"):
            marks += 1
    return marks


def png_problem(data: bytes) -> str | None:
    """Why a PNG is empty or broken, or None: it must decode (8-bit, not interlaced) and its
    pixels must not all be one colour."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return "not a PNG"
    at, idat, header = 8, b"", None
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    if header is None or not idat:
        return "a PNG without IHDR or IDAT"
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        return None  # a form this check does not decode; it is not empty for that
    try:
        raw = zlib.decompress(idat)
    except zlib.error as e:
        return f"a PNG whose pixels do not decompress: {e}"
    stride = width * channels
    if len(raw) != height * (stride + 1):
        return f"a PNG of {width}x{height} with {len(raw)} bytes of pixels"
    # Undo the row filters (PNG spec, section 9), then look for a second colour.
    prev, first, bpp = bytearray(stride), None, channels
    for y in range(height):
        kind, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + a) & 255
            elif kind == 2:
                row[i] = (row[i] + b) & 255
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 255
            elif kind == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, channels):
            pixel = bytes(row[x : x + channels])
            if first is None:
                first = pixel
            elif pixel != first:
                return None
        prev = row
    return "a PNG of one flat colour"


def chart_problems(cell) -> list[str]:
    problems = []
    for o in cell.get("outputs", []):
        data = o.get("data", {}) if o.get("output_type") in ("display_data", "execute_result") else {}
        if "image/svg+xml" in data:
            svg = data["image/svg+xml"]
            svg = svg if isinstance(svg, str) else "".join(svg)
            try:
                marks = svg_marks(svg)
            except ET.ParseError as e:
                problems.append(f"an SVG output that does not parse: {e}")
                continue
            if marks < MARK_MIN:
                problems.append(
                    f"an SVG chart with {marks} data marks (series points, cells, circles, "
                    f"paths; at least {MARK_MIN} expected): an empty chart"
                )
        if "image/png" in data:
            png = data["image/png"]
            png = png if isinstance(png, str) else "".join(png)
            try:
                why = png_problem(base64.b64decode(png))
            except (ValueError, struct.error) as e:
                why = f"a PNG output that does not decode: {e}"
            if why:
                problems.append(why)
    return problems


def expectation_problems(cell) -> list[str]:
    """The cell's `massivetext.expect` regular expressions against its stdout."""
    expect = cell.get("metadata", {}).get("massivetext", {}).get("expect", [])
    out = stream_text(cell, "stdout")
    problems = []
    for pattern in expect:
        m = re.search(pattern, out, re.MULTILINE)
        if not m:
            problems.append(f"stdout does not show what the cell states: no match for `{pattern}`")
            continue
        groups = m.groupdict()
        if "lo" in groups and "hi" in groups and not float(groups["lo"]) < float(groups["hi"]):
            problems.append(
                f"`{pattern}`: {groups['lo']} (lo) is not below {groups['hi']} (hi)"
            )
    return problems


def excerpt(text: str, limit: int = 800) -> str:
    """The start of a message (where an error says what went wrong), cut at `limit`."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


def check_cell(cell, tags: set[str], vars_text: str | None, sentinel: str | None) -> list[str]:
    problems = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            problems.append(
                f"error output: {o.get('ename', '')}: {excerpt(o.get('evalue', ''))}"
            )
    for name in ("stdout", "stderr"):
        text = stream_text(cell, name)
        if "panicked at" in text:
            problems.append(f"a panic on {name}: {excerpt(text)}")
    err = stream_text(cell, "stderr")
    if err.strip() and "allow-stderr" not in tags and "panicked at" not in err:
        problems.append(
            f"stderr output (an `Err` from `?`, or a warning; tag the cell `allow-stderr` if it "
            f"is expected): {excerpt(err)}"
        )
    if sentinel is not None and vars_text is not None and sentinel not in vars_text:
        problems.append(
            "the cell did not run to its end (its variables were not stored: a panic or an `Err` "
            "from `?`, whose message evcxr may have lost)"
        )
    kinds = rich_kinds(cell)
    for tag, mime in TAG_MIME.items():
        if tag in tags and mime not in kinds:
            problems.append(f"tagged `{tag}` but has no {mime} output (has: {sorted(kinds) or 'none'})")
    if "expect-stdout" in tags and not stream_text(cell, "stdout").strip():
        problems.append("tagged `expect-stdout` but printed nothing")
    problems += chart_problems(cell)
    problems += expectation_problems(cell)
    return problems


def compare_structure(committed, fresh) -> list[str]:
    """The committed notebook against the fresh run: same cells, same kinds of rich output."""
    problems = []
    if len(committed.cells) != len(fresh.cells):
        return [f"{len(committed.cells)} cells committed, {len(fresh.cells)} run"]
    for i, (a, b) in enumerate(zip(committed.cells, fresh.cells)):
        if a.cell_type != b.cell_type or source_of(a) != source_of(b):
            problems.append(f"cell {i}: source differs")
        elif a.cell_type == "code" and rich_kinds(a) != rich_kinds(b):
            problems.append(
                f"cell {i}: committed outputs {sorted(rich_kinds(a)) or 'none'}, "
                f"this run {sorted(rich_kinds(b)) or 'none'}"
            )
        elif a.cell_type == "code" and bool(a.get("outputs")) != bool(b.get("outputs")):
            problems.append(
                f"cell {i}: committed {'with' if a.get('outputs') else 'without'} outputs, "
                f"this run {'with' if b.get('outputs') else 'without'}"
            )
    if problems:
        problems.append("run `.ci/notebooks --refresh NOTEBOOK` (full settings) and commit the notebooks")
    return problems


def run_code(client, code: str, index: int) -> list:
    """Runs `code` in the kernel without keeping it in the notebook; returns its outputs.
    (nbclient stores the cell it ran at `index`: the cell that was there is put back.)"""
    kept = client.nb.cells[index]
    probe = nbformat.v4.new_code_cell(code)
    try:
        client.execute_cell(probe, index, store_history=False)
    finally:
        client.nb.cells[index] = kept
    return probe.outputs


def run_notebook(
    path: Path, timeout: int, cold_timeout: int, dep_only: bool = False
) -> tuple[object, list[str], float]:
    nb = nbformat.read(path, as_version=4)
    work = copy.deepcopy(nb)
    if dep_only:
        # the cells up to the first `:dep`, from the notebook's own folder, so that the build
        # is the very one the notebooks' first cells reuse
        first_dep = next(i for i, c in enumerate(work.cells) if ":dep" in source_of(c))
        work.cells = work.cells[: first_dep + 1]
    client = NotebookClient(
        work,
        kernel_name="rust",
        timeout=cold_timeout,
        allow_errors=True,
        record_timing=True,
        coalesce_streams=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    problems: list[str] = []
    start = time.monotonic()
    with client.setup_kernel():
        for i, cell in enumerate(work.cells):
            if cell.cell_type != "code":
                continue
            src = source_of(cell)
            tags = set(cell.get("metadata", {}).get("tags", []))
            code, sentinel = with_sentinel(src, i)
            # The first cell compiles the crate (cold: many minutes); later cells are quick.
            client.timeout = cold_timeout if ":dep" in src else timeout
            t0 = time.monotonic()
            cell.source = code
            try:
                client.execute_cell(cell, i)
            except Exception as e:  # a timeout or a dead kernel
                cell.source = src
                problems.append(f"cell {i}: {type(e).__name__}: {excerpt(str(e))}")
                break
            cell.source = src
            vars_text = None
            if sentinel is not None:
                out = run_code(client, ":vars", i)
                vars_text = "".join(
                    o.get("text", "") + "".join(str(v) for v in o.get("data", {}).values())
                    for o in out
                )
            cell_problems = check_cell(cell, tags, vars_text, sentinel)
            took = time.monotonic() - t0
            cell.setdefault("metadata", {}).setdefault("massivetext", {})["seconds"] = round(took, 1)
            if cell_problems:
                first_line = src.strip().splitlines()[0] if src.strip() else ""
                problems += [f"cell {i} (`{first_line[:60]}`): {p}" for p in cell_problems]
                break  # later cells depend on this one
    return work, problems, time.monotonic() - start


def strip_for_commit(nb) -> None:
    """Keeps outputs; drops what changes every run and carries nothing (execution timing), and
    numbers the code cells (`number_cells`)."""
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    number_cells(nb)


def number_cells(nb) -> None:
    """Numbers the code cells 1, 2, 3, ... as one pass from the top gives them (the runner's own
    `:vars` requests take numbers of the kernel's count in between): what the committed file
    and the screenshot of a run both show."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is None:
            continue
        count += 1
        cell.execution_count = count
        for out in cell.get("outputs", []):
            if out.get("output_type") == "execute_result":
                out["execution_count"] = count


def check_committed(paths: list[Path]) -> int:
    """The checks of a cell's outputs on the committed notebooks, without a kernel (a cell that
    did not finish cannot be told from its outputs: only a run sees that), and that the outputs
    come from a full run."""
    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        problems = []
        if nb.metadata.get("massivetext", {}).get("quick", True):
            # the committed outputs are those of full runs (docs/notebooks.md)
            problems.append(
                "its outputs are not from a full run (metadata massivetext.quick is not false): "
                f"run `.ci/notebooks --refresh notebooks/{path.name}`"
            )
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                tags = set(cell.get("metadata", {}).get("tags", []))
                problems += [f"cell {i}: {p}" for p in check_cell(cell, tags, None, None)]
        print(f"{'FAIL' if problems else 'ok  '} {path.name} (committed outputs)")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    print(f"{len(paths) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--refresh", action="store_true", help="write the fresh outputs into the notebooks")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    ap.add_argument(
        "--cold-timeout", type=int, default=3600, help="seconds for a cell with :dep (default 3600)"
    )
    ap.add_argument("--no-compare", action="store_true", help="do not compare with the committed file")
    ap.add_argument("--print-stdout", action="store_true", help="print what each cell printed")
    ap.add_argument(
        "--no-screens", action="store_true",
        help="skip the HTML export and its check in headless Chromium (target/notebook-screens)",
    )
    ap.add_argument(
        "--warm", action="store_true",
        help="run only the first notebook's cells up to its `:dep` (builds the kernel's dependencies)",
    )
    ap.add_argument(
        "--committed", action="store_true",
        help="run nothing: check the outputs committed in the notebooks (charts, values, tags)",
    )
    args = ap.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    if args.committed:
        return check_committed(paths)
    if args.warm:
        path = paths[0].resolve()
        _, problems, took = run_notebook(path, args.timeout, args.cold_timeout, dep_only=True)
        for p in problems:
            print(f"  {p}")
        print(f"{'FAIL' if problems else 'ok  '} warming the kernel's build folder with the first cell of {path.name} ({took:.0f}s)")
        return 1 if problems else 0
    if not args.no_screens:
        notebook_screens.self_check()
    passed, failed = 0, 0
    for path in paths:
        path = path.resolve()
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"== {rel}", flush=True)
        fresh, problems, took = run_notebook(path, args.timeout, args.cold_timeout)
        if args.print_stdout:
            for c in fresh.cells:
                if c.cell_type == "code" and stream_text(c, "stdout").strip():
                    print(stream_text(c, "stdout").rstrip())
        if not problems and not args.refresh and not args.no_compare:
            problems = compare_structure(nbformat.read(path, as_version=4), fresh)
        if not problems and not args.no_screens:
            # as a reader sees it: HTML in headless Chromium (.ci/notebook_screens.py)
            number_cells(fresh)
            problems = notebook_screens.screen(fresh, path.stem)
        if problems:
            failed += 1
            print(f"FAIL {rel} ({took:.0f}s)")
            for p in problems:
                print(f"  {p}")
        else:
            passed += 1
            seconds = [c.metadata.get("massivetext", {}).get("seconds", 0) for c in fresh.cells]
            print(f"ok   {rel} ({took:.0f}s; slowest cell {max(seconds, default=0):.0f}s)")
            if args.refresh:
                strip_for_commit(fresh)
                fresh.metadata.setdefault("massivetext", {})["quick"] = (
                    os.environ.get("MASSIVETEXT_QUICK", "") not in ("", "0")
                )
                nbformat.write(fresh, path)
                print(f"     wrote {rel}")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
