"""Shared helpers of the benchmark scripts: machine facts, timing, RESULTS.md and results.json.

Every script appends a human-readable section to ``benchmarks/RESULTS.md`` and its figures to
``benchmarks/results.json`` (read by ``plot.py``). A figure is one number of one run: which
benchmark and panel it belongs to, the series (customerkit or a baseline), the size and the
value, plus any extra measures. Scripts pass their figures to :func:`append_section`; for the
sections of scripts that do not (yet), the figures are read from the section's table rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
RESULTS_JSON = HERE / "results.json"


class Figure(TypedDict, total=False):
    """One measured value; ``benchmark``, ``panel``, ``series``, ``size``, ``value``, ``unit``."""

    benchmark: str  # "duplicates", "search", "load_export": one PNG each
    panel: str  # one subplot of the PNG, e.g. "contacts" or "ranked top 20, p50"
    series: str  # one line of the subplot: "customerkit ..." or a baseline
    size: int
    value: float
    unit: str  # "s" or "ms"
    extra: dict[str, Any]  # other measures of the same run (peak RSS, F1, p95, ...)
    # Filled in by record_figures:
    stamp: str
    machine: str
    load: list[float]
    section: str


def figure(
    benchmark: str, panel: str, series: str, *, size: int, value: float, unit: str, **extra: Any
) -> Figure:
    """A :class:`Figure`; keyword arguments go to ``extra``."""
    return Figure(
        benchmark=benchmark,
        panel=panel,
        series=series,
        size=size,
        value=value,
        unit=unit,
        extra=extra,
    )


def memory_total() -> str:
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
            kib = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return "unknown memory"
    return f"{kib / 1024 / 1024:.0f} GiB"


def machine() -> str:
    """Cores, memory and Python, as one line."""
    return (
        f"{os.cpu_count()} cores, {memory_total()}, Python {platform.python_version()} "
        f"({platform.machine()}, {sys.platform})"
    )


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (other jobs share this machine's cores)."""
    try:
        return os.getloadavg()
    except OSError:  # not available on this platform
        return (float("nan"),) * 3


def load_text(load: Sequence[float] | None = None) -> str:
    one, five, fifteen = load or load_average()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def _status_mib(field: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    """Resident set size of this process now, in MiB."""
    return _status_mib("VmRSS:")


def peak_rss_mib() -> float:
    """Peak resident set size of this process's memory map, in MiB.

    VmHWM belongs to the address space, so a freshly spawned child starts from zero; ru_maxrss
    would carry the parent's peak over fork and exec.
    """
    return _status_mib("VmHWM:")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, by the inclusive method."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def stamp_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def append_section(
    title: str, lines: list[str], *, figures: Sequence[Figure] | None = None
) -> None:
    """Append a dated section to RESULTS.md, echo it, and record its figures in results.json.

    Args:
        title: The section's title (its size is read from it when figures are not given).
        lines: Markdown lines of the section.
        figures: The section's figures; None reads them from the table rows of the known
            section formats (memory search, bulk load and export).
    """
    stamp = stamp_now()
    load = load_average()
    text = "\n".join(
        [f"## {title} — {stamp}", "", f"Machine: {machine()}; {load_text(load)}.", "", *lines]
    )
    print(text, flush=True)
    with _locked(RESULTS):
        # A section starts on a blank line even when the file's last writer left none.
        previous = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        gap = "" if not previous or previous.endswith("\n\n") else "\n"
        with RESULTS.open("a", encoding="utf-8") as results:
            results.write(gap + text + "\n\n")
    found = list(figures) if figures is not None else figures_from_section(title, lines)
    record_figures(found, stamp=stamp, load=load, section=title)


def record_figures(
    figures: Sequence[Figure],
    *,
    stamp: str | None = None,
    load: Sequence[float] | None = None,
    section: str = "",
) -> None:
    """Append figures to results.json (a JSON object with a ``figures`` list)."""
    if not figures:
        return
    common = {
        "stamp": stamp or stamp_now(),
        "machine": machine(),
        "load": [round(x, 2) for x in (load or load_average())],
        "section": section,
    }
    with _locked(RESULTS_JSON):
        data = read_figures()
        data.extend(Figure(**{**common, **item}) for item in figures)  # type: ignore[typeddict-item]
        tmp = RESULTS_JSON.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"figures": data}, indent=1) + "\n", encoding="utf-8")
        tmp.replace(RESULTS_JSON)


def read_figures() -> list[Figure]:
    """Every figure recorded so far, oldest first."""
    if not RESULTS_JSON.exists():
        return []
    figures: list[Figure] = json.loads(RESULTS_JSON.read_text(encoding="utf-8"))["figures"]
    return figures


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Benchmarks of several engineers may finish at the same moment. The lock is taken on the
    # folder, so no lock file is left behind (results.json itself is replaced, not rewritten).
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


# --- figures from the table rows of sections written without figures ---------------------------

_SIZE = re.compile(r"([\d,]+) (?:customers|contacts)")
_SECONDS = re.compile(r"([\d.]+) s\b")
_P50 = re.compile(r"p50 ([\d.]+) ms")
_P95 = re.compile(r"p95 ([\d.]+) ms")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_rows(lines: Sequence[str]) -> list[list[str]]:
    return [
        _cells(line)
        for line in lines
        if line.lstrip().startswith("|") and not set(line) <= set("|-: ")
    ]


def figures_from_section(title: str, lines: Sequence[str]) -> list[Figure]:
    """Figures of a memory-search or load/export section, read from its table rows."""
    size_match = _SIZE.search(title)
    rows = _table_rows(lines)
    if title.startswith("Bulk load and export"):
        return _load_export_figures(rows)
    if size_match is None:
        return []
    size = int(size_match.group(1).replace(",", ""))
    if title.startswith("Search, memory backend"):
        return _memory_search_figures(rows, size)
    if title.startswith("Search, SQL backend"):
        return _sql_search_figures(rows, size)
    return []


def _memory_search_figures(rows: list[list[str]], size: int) -> list[Figure]:
    out: list[Figure] = []
    series = {
        "index search, first pass": "customerkit memory index",
        "baseline: naive Python scan, same semantics and results": "naive Python scan",
        "baseline: `rapidfuzz.process.extract` over all names": "rapidfuzz.process.extract",
    }
    for label, value, *_ in (row for row in rows if len(row) >= 2):
        if label in series and (p50 := _P50.search(value)):
            p95 = _P95.search(value)
            extra = {"p95_ms": float(p95.group(1))} if p95 else {}
            ms = float(p50.group(1))
            panel = "ranked top 20, p50"
            out.append(
                figure("search", panel, series[label], size=size, value=ms, unit="ms", **extra)
            )
        elif label.startswith("build") and (took := _SECONDS.search(value)):
            seconds = float(took.group(1))
            series_name = "customerkit memory index"
            out.append(
                figure("search", "index build", series_name, size=size, value=seconds, unit="s")
            )
    return out


def _sql_search_figures(rows: list[list[str]], size: int) -> list[Figure]:
    # The format bench_sql_search.py wrote before it passed its figures.
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    out: list[Figure] = []
    for label, value, *_ in (row for row in rows if len(row) >= 2):
        backend = label.split(":")[0]
        p50 = _P50.search(value)
        if backend in names and label.endswith("search, first pass") and p50:
            series = f"customerkit {names[backend]}"
            ms = float(p50.group(1))
            out.append(
                figure("search", "ranked top 20, p50", series, size=size, value=ms, unit="ms")
            )
        elif backend in names and ": build" in label and (took := _SECONDS.search(value)):
            series = f"customerkit {names[backend]} load"
            seconds = float(took.group(1))
            out.append(figure("search", "index build", series, size=size, value=seconds, unit="s"))
        elif label.startswith("baseline: ") and p50:
            name = label.removeprefix("baseline: ")
            series = name.split(",")[0] + (", ranked" if "ranked" in name else "")
            ms = float(p50.group(1))
            out.append(
                figure("search", "ranked top 20, p50", series, size=size, value=ms, unit="ms")
            )
    return out


def _load_export_figures(rows: list[list[str]]) -> list[Figure]:
    out: list[Figure] = []
    for row in rows:
        if len(row) < 6 or row[2] not in {"load", "export CSV"}:
            continue
        backend, size_text, what, time_text, _, baseline = row[:6]
        took, base = _SECONDS.search(time_text), _SECONDS.search(baseline)
        if not size_text.replace(",", "").isdigit() or took is None:
            continue
        size = int(size_text.replace(",", ""))
        ours = f"customerkit {'create_many' if what == 'load' else 'export'}, {backend}"
        out.append(
            figure("load_export", what, ours, size=size, value=float(took.group(1)), unit="s")
        )
        if base:
            plain = f"baseline {'plain store' if what == 'load' else 'csv.writer'}, {backend}"
            seconds = float(base.group(1))
            out.append(figure("load_export", what, plain, size=size, value=seconds, unit="s"))
    return out


def report_child_result(result: dict[str, Any]) -> None:
    """Hand a child run's figures to ``run_child`` (one ``RESULT`` line of JSON on stdout)."""
    print("RESULT " + json.dumps(result), flush=True)


def run_child(command: Sequence[str], which: str) -> dict[str, Any]:
    """Run one measured run in its own process (so its peak memory is its own); its figures.

    Exits with the child's last stderr when it fails.
    """
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own scripts
    if done.returncode:
        log = HERE / ".cache" / f"failed-{which.replace(' ', '-')}.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text(done.stderr, encoding="utf-8")
        sys.exit(f"the {which} run failed (its whole stderr: {log}):\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result
