"""Normalised records turned into the arrays the scorer reads: text and integer codes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import numpy as np

from customerkit.data.nicknames import NICKNAMES
from customerkit.matching.blocking import scoped
from customerkit.matching.column import Column, combine
from customerkit.matching.comparisons import IntArray, ObjectArray
from customerkit.matching.config import ExtraComparison, MatchConfig
from customerkit.matching.normalize import extra_column, full_name_key


@attrs.frozen(kw_only=True, eq=False)
class Features:
    """Normalised records as arrays: the text of each key and integer codes for equality.

    Attributes:
        kind: ``"contact"`` or ``"customer"``.
        text: Normalised column -> object array of strings (``""`` missing).
        codes: Normalised column -> integer codes, equal codes for equal text, ``-1`` missing.
            Also ``domain`` (an email's domain), ``house`` (the address's house number),
            ``name`` (the full name of a contact or the company's words, in its scope) and
            ``name_count`` (how many records share it); for contacts ``initial``, ``lone``
            (1 when the first name is an initial) and ``nicknamed`` (1 when it has nicknames).
        named: How many records have a name (the total ``name_count`` is counted against).
        extras: The extra comparisons, by column name.
    """

    kind: str
    text: dict[str, ObjectArray]
    codes: dict[str, IntArray]
    named: int
    extras: Mapping[str, ExtraComparison]

    def __len__(self) -> int:
        return len(next(iter(self.text.values())))


def _house_number(address: str) -> str:
    head = address.split(" ", 1)[0]
    return head if head.isdigit() else ""


def _domain(email: str) -> str:
    return email.rpartition("@")[2]


def _digits_of(email: str) -> str:
    return "".join(ch for ch in email if ch.isdigit()) or "-"  # "-": present, no digits


def _initial(name: str) -> str:
    return name[:1]


def _has_nicknames(name: str) -> bool:
    return name in NICKNAMES


def _is_initial(name: str) -> bool:
    return len(name) == 1


def _sorted_words(value: str) -> str:
    return " ".join(sorted(value.split())) if value else ""


def name_key_of(kind: str, row: Mapping[str, str]) -> str:
    """The name whose frequency adjusts agreement: full name, or the company's words."""
    if kind == "contact":
        return full_name_key(row["given"], row["last"])
    return _sorted_words(row["company"])


def _name_codes(
    kind: str, columns: Mapping[str, Column], scopes: Sequence[str | None] | None
) -> IntArray:
    """Codes of each record's name within its scope (``-1`` for none)."""
    if kind == "contact":
        names = combine(full_name_key, columns["given"], columns["last"])
    else:
        names = columns["company"].map(_sorted_words)
    if scopes is None:
        return names.codes
    if type(scopes) is Column:
        return combine(scoped, names, scopes).codes
    return Column.of([scoped(name, scope) for name, scope in zip(names, scopes, strict=True)]).codes


def build_features(
    kind: str,
    norm: Mapping[str, Sequence[str]],
    *,
    config: MatchConfig,
    scopes: Sequence[str | None] | None = None,
    name_counts: IntArray | None = None,
    named: int | None = None,
) -> Features:
    """Turn normalised columns into ``Features``.

    The columns are those of ``customerkit.matching.normalize.normalize_columns``.

    Args:
        kind: ``"contact"`` or ``"customer"``.
        norm: Normalised columns.
        config: The matching settings (for extra comparisons).
        scopes: Scope value per record, or None when matching is not scoped.
        name_counts: How many records (in all, not only these) share each record's name in
            its scope; counted from ``norm`` when None.
        named: How many records (in all) have a name; counted from ``norm`` when None.

    Returns:
        The arrays the scorer reads.
    """
    columns = {name: Column.of(values) for name, values in norm.items()}
    coded = [name for name in columns if name != "given" or kind == "contact"]
    codes = {name: columns[name].codes for name in coded}
    codes["domain"] = columns["email"].map(_domain).codes
    codes["email_digits"] = columns["email"].map(_digits_of).codes
    codes["house"] = columns["address"].map(_house_number).codes
    if kind == "contact":
        first = columns["first"]
        codes["initial"] = first.map(_initial).codes
        codes["nicknamed"] = first.flags(_has_nicknames)
        codes["lone"] = first.flags(_is_initial)
    names = _name_codes(kind, columns, scopes)
    if name_counts is None:
        counts = np.bincount(names[names >= 0], minlength=1)
        name_counts = np.where(names >= 0, counts[np.maximum(names, 0)], 0)
    codes["name"] = names
    codes["name_count"] = name_counts
    if named is None:
        named = int(np.count_nonzero(names >= 0))
    text = {name: column.objects() for name, column in columns.items()}
    extras = {extra_column(extra.field): extra for extra in config.comparisons}
    return Features(kind=kind, text=text, codes=codes, named=named, extras=extras)
