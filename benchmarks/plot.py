"""Draw the scaling plots: time against size on log-log axes, customerkit beside its baselines.

    python benchmarks/plot.py                    # benchmarks/*.png and docs/assets/performance/
    python benchmarks/plot.py --import-markdown  # first add figures only RESULTS.md holds

Reads ``benchmarks/results.json`` (written by every benchmark through ``_common.py``) and
draws one PNG per benchmark (duplicates, search, load/export), one panel per measure, one line
per series, each point the latest figure for that size. ``--import-markdown`` reads the
sections of ``RESULTS.md`` whose figures are not in results.json yet (runs from before it
existed) and records them. matplotlib is a benchmark-only dependency.
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections import defaultdict
from pathlib import Path

from _common import (
    HERE,
    RESULTS,
    Figure,
    figure,
    figures_from_section,
    read_figures,
    record_figures,
)

DOCS = HERE.parent / "docs" / "assets" / "performance"
TITLES = {
    "duplicates": "Find duplicates: wall time",
    "search": "Search: ranked top 20",
    "load_export": "Bulk load and CSV export",
    "find_similar": "find_similar: search before create",
    "scale": "A location's customer duplicates on an SQL book",
}
# SPEC §6 bars at 10^6 records, drawn as dotted lines: (benchmark, panel prefix) -> lines
TARGETS = {
    ("duplicates", "contacts"): [(60.0, "SPEC: ≤ 60 s at 10^6")],
    ("search", "ranked top 20, p50"): [
        (10.0, "SPEC: SQL p50 ≤ 10 ms"),
        (1.0, "SPEC: memory ≤ 1 ms"),
    ],
    ("search", "index build"): [(20.0, "SPEC: memory build ≤ 20 s")],
    ("load_export", "load"): [(60.0, "SPEC: SQLite ≤ 60 s at 10^6")],
    ("load_export", "export CSV"): [(15.0, "SPEC: ≤ 15 s at 10^6")],
}
# Benchmarks whose figures are not a scaling curve: one data set each, read from the tables.
UNPLOTTED = frozenset({"quality"})
_OLD_DUPLICATES = re.compile(r"^### find_duplicates, ([\d,]+) (\w+)s, (.+?) \((.+?)\)$")
_SECTION = re.compile(r"^## (.+?) — (.+)$")


def latest(figures: list[Figure]) -> dict[str, dict[str, dict[str, dict[int, Figure]]]]:
    """benchmark -> panel -> series -> size -> the most recent figure."""
    out: dict[str, dict[str, dict[str, dict[int, Figure]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    for item in sorted(figures, key=lambda f: f.get("stamp", "")):  # stable: later wins ties
        out[item["benchmark"]][item["panel"]][item["series"]][item["size"]] = item
    return out


def draw(benchmark: str, panels: dict[str, dict[str, dict[int, Figure]]], out: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(panels, key=lambda p: (p.startswith("index build"), p))
    fig, axes = plt.subplots(1, len(names), figsize=(6.2 * len(names), 6.4), squeeze=False)
    for ax, panel in zip(axes[0], names, strict=True):
        unit = "s"
        for series in sorted(panels[panel], key=lambda s: (not s.startswith("customerkit"), s)):
            points = sorted(panels[panel][series].items())
            unit = points[0][1]["unit"]
            ours = series.startswith("customerkit")
            ax.plot(
                [size for size, _ in points],
                [item["value"] for _, item in points],
                marker="o" if ours else "s",
                linestyle="-" if ours else "--",
                linewidth=2 if ours else 1.2,
                label=series,
            )
        for (name, prefix), targets in TARGETS.items():
            if name == benchmark and panel.startswith(prefix):
                for value, text in targets:
                    ax.axhline(value, color="grey", linestyle=":", linewidth=1, label=text)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records")
        ax.set_ylabel("p50 latency (ms)" if unit == "ms" else "time (s)")
        ax.set_title(panel)
        ax.grid(visible=True, which="both", alpha=0.3)
        # Below the axes: inside, the legend hides the lines it names.
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(TITLES.get(benchmark, benchmark))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def import_markdown() -> int:
    """Record the figures of RESULTS.md sections that results.json does not hold yet."""
    known = {(f.get("section", ""), f.get("stamp", "")) for f in read_figures()}
    lines = RESULTS.read_text(encoding="utf-8").splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith(("## ", "### "))]
    added = 0
    for start, end in zip(heads, [*heads[1:], len(lines)], strict=True):
        head, body = lines[start], lines[start + 1 : end]
        if match := _SECTION.match(head):
            title, stamp = match.groups()
            found = figures_from_section(title, body)
        elif match := _OLD_DUPLICATES.match(head):
            size, kind, scope, stamp = match.groups()
            title = f"Duplicates, {size} {kind}s, {scope}"
            found = _old_duplicates(int(size.replace(",", "")), kind, scope, body)
        else:
            continue
        if found and (title, stamp) not in known:
            record_figures(found, stamp=stamp, load=[float("nan")] * 3, section=title)
            known.add((title, stamp))
            added += len(found)
    return added


def _old_duplicates(size: int, kind: str, scope: str, body: list[str]) -> list[Figure]:
    """Figures of the tables bench_duplicates.py wrote before results.json."""
    labels = {"customerkit": "customerkit", "rapidfuzz blocking baseline": LABEL_RAPIDFUZZ}
    panel = f"{kind}s" + ("" if scope == "global" else f", {scope}")
    out = []
    for line in body:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in labels and len(cells) >= 7:
            out.append(
                figure(
                    "duplicates",
                    panel,
                    labels[cells[0]],
                    size=size,
                    value=float(cells[1]),
                    unit="s",
                    f1=float(cells[-1]),
                )
            )
    return out


LABEL_RAPIDFUZZ = "rapidfuzz blocking baseline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import-markdown", action="store_true")
    args = parser.parse_args()
    if args.import_markdown:
        print(f"imported {import_markdown()} figures from {RESULTS.name}")
    figures = read_figures()
    if not figures:
        print("no figures yet: run a benchmark first")
        return
    DOCS.mkdir(parents=True, exist_ok=True)
    for benchmark, panels in latest(figures).items():
        if benchmark in UNPLOTTED:
            continue
        out = HERE / f"{benchmark}.png"
        draw(benchmark, panels, out)
        shutil.copyfile(out, DOCS / out.name)  # mkdocs serves files under docs/ only
        print(f"wrote {out.relative_to(HERE.parent)} and its copy under docs/")


if __name__ == "__main__":
    main()
