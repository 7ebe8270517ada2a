"""A duplicate report as HTML a person can work through: one self-contained page, no server.

Every group is a collapsible section, the least certain first (the group whose weakest link
scores nearest the threshold) and open, with its records side by side (the proposed main first), the
score and per-field evidence of each pair, and highlighted cells where the matcher saw a
difference: a phone written two ways is the same phone, so it is not highlighted. Pairs that
joined no group follow. Colours follow the reader's light or dark theme.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from customerkit.matching.report import DuplicateGroup, DuplicatePair, DuplicateReport

__all__ = ["render"]

_STYLE: Final = """
.ck-report { font-family: system-ui, sans-serif; color: #1d1d1f; background: #fff; }
.ck-report table { border-collapse: collapse; margin: .4em 0 .8em; }
.ck-report th, .ck-report td { border: 1px solid #c8c8cc; padding: .2em .5em; text-align: left; }
.ck-report th { background: #f0f0f3; }
.ck-report td.ck-differs { background: #ffe9a8; color: #1d1d1f; }
.ck-report summary { cursor: pointer; padding: .2em 0; }
.ck-report .ck-weight-plus { color: #12692e; }
.ck-report .ck-weight-minus { color: #a51d1d; }
@media (prefers-color-scheme: dark) {
  .ck-report { color: #e8e8ed; background: #1d1d1f; }
  .ck-report th { background: #2c2c2e; }
  .ck-report th, .ck-report td { border-color: #48484a; }
  .ck-report td.ck-differs { background: #6b5310; color: #fff4d6; }
  .ck-report .ck-weight-plus { color: #7ee2a0; }
  .ck-report .ck-weight-minus { color: #ff9c9c; }
}
"""


def render(report: DuplicateReport, *, limit: int | None = None, document: bool = False) -> str:
    """The report as HTML.

    Args:
        report: The report.
        limit: Show at most this many groups (the least certain ones); None shows all.
        document: A whole page (``<!DOCTYPE html>`` ...) rather than a fragment for a notebook.

    Returns:
        The HTML text; every value in it is escaped.
    """
    threshold = report.config.threshold if report.config is not None else 0.5
    inside = _pairs_by_group(report.groups, report.pairs)
    order = sorted(
        range(len(report.groups)),
        key=lambda k: (_certainty(inside[k], threshold), report.groups[k].main_id),
    )
    shown = order if limit is None else order[:limit]
    grouped = {id(pair) for pairs in inside for pair in pairs}
    loose = [pair for pair in report.pairs if id(pair) not in grouped]
    parts = [
        "<div class='ck-report'>",
        f"<style>{_STYLE}</style>",
        f"<p>{len(report.pairs)} pairs in {len(report.groups)} groups; "
        f"{report.compared} pairs compared; the least certain groups first.</p>",
    ]
    parts.extend(
        _group(k, report.groups[k], inside[k], report.fields, report.values, first=at == 0)
        for at, k in enumerate(shown)
    )
    if len(shown) < len(order):
        parts.append(
            f"<p>{len(order) - len(shown)} more groups: report.to_html(path) writes them all.</p>"
        )
    if loose:
        parts.append("<details><summary>Pairs in no group</summary>")
        parts.append(_pair_table(loose))
        parts.append("</details>")
    parts.append("</div>")
    body = "".join(parts)
    if not document:
        return body
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='color-scheme' content='light dark'>"
        "<title>Duplicates</title></head><body>" + body + "</body></html>"
    )


def _pairs_by_group(
    groups: Sequence[DuplicateGroup], pairs: Sequence[DuplicatePair]
) -> list[list[DuplicatePair]]:
    group_of = {record_id: k for k, group in enumerate(groups) for record_id in group.ids}
    inside: list[list[DuplicatePair]] = [[] for _ in groups]
    for pair in pairs:
        k = group_of.get(pair.left_id)
        if k is not None and group_of.get(pair.right_id) == k:
            inside[k].append(pair)
    return inside


def _certainty(pairs: Sequence[DuplicatePair], threshold: float) -> float:
    """How far the group's weakest link is above the threshold (0: a coin toss)."""
    return min((pair.score for pair in pairs), default=1.0) - threshold


def _differences(main: str, pairs: Sequence[DuplicatePair]) -> dict[str, dict[str, bool]]:
    """For each other member, field -> whether the matcher found it different from the main's."""
    out: dict[str, dict[str, bool]] = {}
    for pair in pairs:
        if main not in (pair.left_id, pair.right_id):
            continue
        other = pair.right_id if pair.left_id == main else pair.left_id
        out[other] = {e.field: e.level != "same" for e in pair.comparisons}
    return out


def _group(
    k: int,
    group: DuplicateGroup,
    pairs: Sequence[DuplicatePair],
    fields: Sequence[str],
    values: Mapping[str, Mapping[str, str]],
    *,
    first: bool,
) -> str:
    e = html.escape
    members = [group.main_id, *(i for i in group.ids if i != group.main_id)]
    weakest = min((pair.score for pair in pairs), default=1.0)
    differs = _differences(group.main_id, pairs)
    empty: Mapping[str, str] = {}
    rows = [
        f"<details class='ck-group' id='ck-group-{k}'{' open' if first else ''}>"
        f"<summary>{len(members)} records, "
        f"main {e(group.main_id)}, weakest link {weakest:.4f}</summary>",
        "<table><caption>" + e("; ".join(group.reasons)) + "</caption><tr><th>field</th>",
        *(f"<th>{e(i)}{' (main)' if i == group.main_id else ''}</th>" for i in members),
        "</tr>",
    ]
    for field in fields:
        cells = [values.get(i, empty).get(field, "") for i in members]
        if not any(cells):
            continue
        rows.append(f"<tr><th>{e(field)}</th><td>{e(cells[0])}</td>")
        for member, cell in zip(members[1:], cells[1:], strict=True):
            seen = differs.get(member, {}).get(field)
            # No direct pair with the main: fall back to the text as typed, case aside.
            different = seen if seen is not None else cell.casefold() != cells[0].casefold()
            mark = " class='ck-differs'" if different and (cell or cells[0]) else ""
            rows.append(f"<td{mark}>{e(cell)}</td>")
        rows.append("</tr>")
    rows.append("</table>")
    rows.append(_pair_table(pairs))
    rows.append("</details>")
    return "".join(rows)


def _weight(value: float) -> str:
    kind = "plus" if value >= 0 else "minus"
    return f"<span class='ck-weight-{kind}'>{value:+.1f}</span>"


def _pair_table(pairs: Sequence[DuplicatePair]) -> str:
    e = html.escape
    rows = [
        "<table><tr><th>left</th><th>right</th><th>score</th><th>match weight</th>"
        "<th>reasons</th><th>evidence (bits)</th></tr>"
    ]
    rows.extend(
        f"<tr><td>{e(p.left_id)}</td><td>{e(p.right_id)}</td><td>{p.score:.4f}</td>"
        f"<td>{_weight(p.match_weight)}</td><td>{e('; '.join(p.reasons))}</td><td>"
        + ", ".join(f"{e(x.field)} {e(x.level)} {_weight(x.weight)}" for x in p.comparisons)
        + "</td></tr>"
        for p in pairs
    )
    rows.append("</table>")
    return "".join(rows)
