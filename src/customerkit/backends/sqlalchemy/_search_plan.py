"""A database search's plan: each query word's strengths, the rank buckets, the driving word.

Plain values, no statement: ``_search_lookup`` fills them from the vocabulary, and
``_search_pages`` turns them into the statements that read a bucket's candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection

from customerkit.backends.sqlalchemy import _search_limits as limits
from customerkit.backends.sqlalchemy import schema
from customerkit.search.rules import EXACT


class Sql(NamedTuple):
    """A piece of SQL with ``?`` placeholders, and its parameters, in order.

    A search's statements (the look-up, the pages) are written as text: building them
    through SQLAlchemy Core cost 2-4 ms each in Python (a two-word look-up more), more than
    the database took to run them. Only our own constants (field codes, strengths, column
    names, row limits) are spliced into the text; every value is a parameter.
    """

    text: str
    parameters: tuple[Any, ...] = ()


def execute(connection: Connection, statement: Sql) -> list[Any]:
    """The rows of ``statement`` (``?`` placeholders become psycopg's on PostgreSQL)."""
    text = statement.text
    if connection.dialect.name != "sqlite":
        text = text.replace("?", "%s")
    return list(connection.exec_driver_sql(text, statement.parameters).all())


def joined(parts: Sequence[Sql], separator: str) -> Sql:
    """The parts' texts joined by ``separator`` (" UNION ALL ", " AND "), parameters in order."""
    return Sql(
        separator.join(part.text for part in parts),
        tuple(value for part in parts for value in part.parameters),
    )


def with_ctes(ctes: Sequence[Sql], statement: Sql) -> Sql:
    """``statement`` preceded by its common table expressions (``name AS (...)`` each)."""
    if not ctes:
        return statement
    found = joined(ctes, ", ")
    return Sql(f"WITH {found.text} {statement.text}", (*found.parameters, *statement.parameters))


def is_in(words: Sequence[str]) -> Sql:
    """``word`` is one of ``words``: one index seek each."""
    return Sql(f"word IN ({', '.join('?' * len(words))})", tuple(words))


def listed(words: Sequence[str]) -> Sql:
    """PostgreSQL: a select of ``words`` (one column, ``word``), as ``Strength.vocabulary``."""
    return Sql(f"SELECT unnest(ARRAY[{', '.join('?' * len(words))}]) AS word", tuple(words))


class Strength(NamedTuple):
    """The indexed words matching a query word with one strength."""

    strength: int
    #: The distinct words, or None when they are many: then ``condition`` finds them.
    listed: list[str] | None
    #: A condition on ``word`` in the word table finding them.
    condition: Sql
    #: Whether candidates may be checked against these rows in the database: not when a
    #: short word starts too many words to seek one by one.
    checkable: bool = True
    #: PostgreSQL, words not listed: the select of the vocabulary's words ``condition``
    #: finds (one column, ``word``), to read the word table word by word.
    vocabulary: Sql | None = None

    def seekable(self) -> Sql:
        """The words as one condition that keeps the name length a seek (not a range scan).

        On PostgreSQL, words not listed become an array of the vocabulary's words, an index
        seek each: a range on ``word`` would read every name length of the range.
        """
        if self.listed is not None:
            return is_in(self.listed)
        if self.vocabulary is None:
            return self.condition
        return Sql(f"word = ANY(ARRAY({self.vocabulary.text}))", self.vocabulary.parameters)

    def conditions(self) -> list[Sql]:
        """One condition per index range to merge, or the one condition."""
        if self.listed is None:
            return [self.condition]
        return [Sql("word = ?", (word,)) for word in self.listed]


class Plan(NamedTuple):
    """How the index finds one query word: its strengths, strongest first."""

    word: str
    strengths: list[Strength]

    def mergeable(self, tier: int) -> bool:
        """Whether every strength reaching ``tier`` listed its words (each read as a range)."""
        return all(s.listed is not None for s in self.strengths if s.strength >= tier)


class Counts(NamedTuple):
    """A query word's index entries per (field code, strength), each capped at ``cap``."""

    found: dict[tuple[int, int], int]
    cap: int

    def many(self) -> bool:
        """Whether the word has COUNT_CAP entries or more (or so many on one field)."""
        return sum(self.found.values()) >= limits.COUNT_CAP or max(self.found.values()) >= self.cap

    def exact(self) -> int:
        """Entries equal to the word, on any field."""
        return sum(n for (_, strength), n in self.found.items() if strength == EXACT)

    def within(self, codes: Sequence[int], tier: int) -> int:
        """Entries on these fields matching at ``tier`` or better (infixes once counted)."""
        return sum(self.within_each(codes, tier))

    def within_each(self, codes: Sequence[int], tier: int) -> list[int]:
        """The counts ``within`` adds up."""
        return [
            n for (code, strength), n in self.found.items() if code in codes and strength >= tier
        ]

    def capped(self, codes: Sequence[int], tier: int) -> list[tuple[int, int]]:
        """The (field code, strength) pairs of ``within`` whose count reached the cap."""
        return [
            key
            for key, n in self.found.items()
            if key[0] in codes and key[1] >= tier and n >= self.cap
        ]


class Bucket(NamedTuple):
    """One rank class of hits: a tier and whether NAME attains every word's best strength."""

    tier: int
    not_name: int

    def codes(self, searched: Sequence[int], *, single: bool) -> list[int]:
        """The fields (of the ``searched`` codes) whose rows may hold this bucket's hits.

        Its NAME bucket, NAME only. Its other bucket, any field for a query of several words
        (the driver word may be on NAME, another word not), else the fields but NAME: a
        one-word hit on NAME ranked in the NAME bucket.
        """
        if not self.not_name:
            return [code for code in searched if code == schema.NAME]
        if single:
            return [code for code in searched if code != schema.NAME]
        return list(searched)

    def strengths(self, plan: Plan, cap: int, *, single: bool) -> list[Strength]:
        """A word's strengths that reach this tier (capped), or, for one word, equal it."""
        found = [s for s in plan.strengths if s.listed != []]  # [] holds no word: no rows
        if single:
            return [s for s in found if min(s.strength, cap) == self.tier]
        return [s for s in found if s.strength >= self.tier]


def buckets(searched: Sequence[int], plans: Sequence[Plan], cap: int) -> list[Bucket]:
    """The buckets in rank order: by tier (at most the cap), NAME before the others.

    ``searched``: the codes of the fields searched.

    A hit's tier is its weakest word's strength, so every strength of any word is a tier.
    Strengths above the cap share its bucket: no hit ranks above it.
    """
    tiers = {min(s.strength, cap) for plan in plans for s in plan.strengths}
    has_name = schema.NAME in searched
    has_others = any(code != schema.NAME for code in searched)
    return [
        Bucket(tier, not_name)
        for tier in sorted(tiers, reverse=True)
        for not_name, present in ((0, has_name), (1, has_others))
        if present
    ]


def pick_driver(
    plans: dict[str, Plan], counts: dict[str, Counts], codes: Sequence[int], tier: int
) -> str:
    """The word whose rows drive a bucket: one whose words can be merged, the rarest there.

    Rarest on the bucket's fields at its tier: a bucket reads its driver's rows until its page
    is full, all of them when few hold the other words ("tir spr": 30,000 "tires" on NAME,
    no "spr" on NAME at all). A word with too many distinct words to merge is read by
    sorting its rows.
    """
    if len(plans) == 1:
        return next(iter(plans))
    return min(
        plans,
        key=lambda word: (
            not plans[word].mergeable(tier),
            counts[word].within(codes, tier),
            -len(word),
        ),
    )
