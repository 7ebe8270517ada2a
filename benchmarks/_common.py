"""Shared helpers of the benchmark scripts: machine facts, timing, RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """Cores, memory and Python, as one line."""
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
            kib = int(meminfo.readline().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "unknown memory"
    return (
        f"{os.cpu_count()} cores, {memory}, Python {platform.python_version()} "
        f"({platform.machine()}, {sys.platform})"
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, by the inclusive method."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def append_section(title: str, lines: list[str]) -> None:
    """Append a dated section to benchmarks/RESULTS.md and echo it."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([f"## {title} — {stamp}", "", f"Machine: {machine()}", "", *lines, "", ""])
    print(text)
    with RESULTS.open("a", encoding="utf-8") as results:
        results.write(text)
