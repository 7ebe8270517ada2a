"""Scoring candidate pairs: per-field comparison levels combined into one score (rule M1).

Everything here works on whole arrays of pairs: equality through integer codes, string
similarity through :func:`rapidfuzz.process.cpdist` (normalised Indel similarity for names,
emails and addresses, token-sort ratio for company names), weights through table look-ups. Batch
matching scores millions of pairs per call; the incremental index scores one record against a
handful with the very same code, so both give the same score to the same pair.

Each field of a pair falls into a level (0 is always "missing on a side", which adds nothing);
the score is ``1 / (1 + exp(-(bias + sum of level weights))``, rounded to four decimals. The
reasons of a pair are the levels with a positive weight, in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz
from rapidfuzz.distance import Indel
from rapidfuzz.process import cpdist

from customerkit.data.nicknames import NICKNAMES
from customerkit.matching.blocking import scoped
from customerkit.matching.column import Column, combine
from customerkit.matching.config import ContactWeights, CustomerWeights, MatchConfig
from customerkit.matching.normalize import full_name_key, is_nickname

__all__ = ["Comparison", "Features", "build_features", "compare", "reasons"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]

# Level numbers, per field.
MISSING: Final = 0
SAME: Final = 1
# contact first names
NICKNAME, INITIAL, FIRST_CLOSE, FIRST_DIFFERENT = 2, 3, 4, 5
# last names, company names: close, fair, different
CLOSE, FAIR, DIFFERENT = 2, 3, 4
# emails, addresses: close, different
E_CLOSE, E_DIFFERENT = 2, 3
# phones, numbers, postal codes, cities: different
DIFFERS: Final = 2

_THREADED: Final = 10_000  # pairs from which string similarity runs on several threads

_CODED: Final[Mapping[str, tuple[str, ...]]] = {
    "contact": ("first", "given", "last", "email", "phone"),
    "customer": ("company", "number", "address", "postal", "city", "email", "phone"),
}


@attrs.frozen(kw_only=True, eq=False)
class Features:
    """Normalised records as arrays: the text of each key and integer codes for equality.

    Attributes:
        kind: ``"contact"`` or ``"customer"``.
        text: Normalised column -> object array of strings (``""`` missing).
        codes: Normalised column -> integer codes, equal codes for equal text, ``-1`` missing.
            Also ``domain`` (an email's domain); for contacts ``initial`` (first letter),
            ``lone`` (1 when the first name is just an initial), ``nicknamed`` (1 when it has
            nicknames), ``name`` (the full name in its scope) and ``name_count`` (how many
            records share it); for customers ``house`` (the house number).
    """

    kind: str
    text: dict[str, ObjectArray]
    codes: dict[str, IntArray]

    def __len__(self) -> int:
        return len(next(iter(self.text.values())))


def _house_number(address: str) -> str:
    head = address.split(" ", 1)[0]
    return head if head.isdigit() else ""


def _domain(email: str) -> str:
    return email.rpartition("@")[2]


def _initial(name: str) -> str:
    return name[:1]


def _has_nicknames(name: str) -> bool:
    return name in NICKNAMES


def _is_initial(name: str) -> bool:
    return len(name) == 1


def _full_names(given: Column, last: Column, scopes: Sequence[str | None] | None) -> IntArray:
    """Codes of the full name of each record within its scope (``-1`` for none)."""
    names = combine(full_name_key, given, last)
    if scopes is None:
        return names.codes
    if type(scopes) is Column:
        return combine(scoped, names, scopes).codes
    return Column.of([scoped(name, scope) for name, scope in zip(names, scopes, strict=True)]).codes


def build_features(
    kind: str,
    norm: Mapping[str, Sequence[str]],
    *,
    scopes: Sequence[str | None] | None = None,
    name_counts: IntArray | None = None,
) -> Features:
    """Turn normalised columns into :class:`Features`.

    The columns are those of :func:`~customerkit.matching.normalize.normalize_columns`.

    Args:
        kind: ``"contact"`` or ``"customer"``.
        norm: Normalised columns.
        scopes: Scope value per record, or None when matching is not scoped.
        name_counts: For contacts, how many records (in all, not only these) share each
            record's full name in its scope; counted from ``norm`` when None.

    Returns:
        The arrays the scorer reads.
    """
    columns = {name: Column.of(values) for name, values in norm.items()}
    codes = {name: columns[name].codes for name in _CODED[kind]}
    codes["domain"] = columns["email"].map(_domain).codes
    if kind == "contact":
        first = columns["first"]
        codes["initial"] = first.map(_initial).codes
        codes["nicknamed"] = first.flags(_has_nicknames)
        codes["lone"] = first.flags(_is_initial)
        codes["name"] = _full_names(columns["given"], columns["last"], scopes)
        if name_counts is None:
            counts = np.bincount(codes["name"][codes["name"] >= 0], minlength=1)
            name_counts = np.where(codes["name"] >= 0, counts[np.maximum(codes["name"], 0)], 0)
        codes["name_count"] = name_counts
    else:
        codes["house"] = columns["address"].map(_house_number).codes
    text = {name: column.objects() for name, column in columns.items()}
    return Features(kind=kind, text=text, codes=codes)


@attrs.frozen(kw_only=True, eq=False)
class Comparison:
    """The comparison of many pairs: a level per field, similarities and the score.

    Attributes:
        left: Positions of the left records.
        right: Positions of the right records.
        levels: Field -> level per pair.
        similarity: Field -> similarity in [0, 1] per pair (1 for equal values).
        score: Score per pair in [0, 1].
    """

    left: IntArray
    right: IntArray
    levels: dict[str, npt.NDArray[np.int8]]
    similarity: dict[str, npt.NDArray[np.float32]]
    score: FloatArray


class _Pairs:
    """Helpers over one batch of pairs."""

    def __init__(self, features: Features, left: IntArray, right: IntArray, workers: int) -> None:
        self.features = features
        self.left = left
        self.right = right
        # Starting rapidfuzz's threads costs more than comparing a few thousand pairs (one new
        # record against its candidates): use them for large batches only.
        self.workers = workers if left.size >= _THREADED else 1
        self._codes: dict[str, tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]] = {}

    def codes(self, name: str) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """(both present, equal) for a coded column (kept: several levels ask for the same)."""
        if name not in self._codes:
            codes = self.features.codes[name]
            a, b = codes[self.left], codes[self.right]
            both = (a >= 0) & (b >= 0)
            self._codes[name] = (both, both & (a == b))
        return self._codes[name]

    def similarity(
        self, name: str, mask: npt.NDArray[np.bool_], *, tokens: bool = False
    ) -> npt.NDArray[np.float32]:
        """Similarity of column ``name`` where ``mask`` holds, else 0."""
        out = np.zeros(self.left.size, np.float32)
        where = np.flatnonzero(mask)
        if where.size:
            text = self.features.text[name]
            left, right = text[self.left[where]], text[self.right[where]]
            if tokens:
                out[where] = cpdist(
                    left, right, scorer=fuzz.token_sort_ratio, workers=self.workers
                ) / np.float32(100)
            else:
                out[where] = cpdist(
                    left, right, scorer=Indel.normalized_similarity, workers=self.workers
                )
        return out


def _levels(*choices: tuple[npt.NDArray[np.bool_], int], size: int) -> npt.NDArray[np.int8]:
    """The level of each pair: the first choice whose mask holds (later ones do not override)."""
    out = np.zeros(size, np.int8)
    for mask, level in reversed(choices):
        out[mask] = level
    return out


def _weights(*values: float) -> FloatArray:
    return np.array((0.0, *values), np.float64)


def _contact_tables(w: ContactWeights) -> dict[str, FloatArray]:
    return {
        "email": _weights(w.email_same, w.email_close, w.email_different),
        "phone": _weights(w.phone_same, w.phone_different),
        "first": _weights(
            w.first_same, w.first_nickname, w.first_initial, w.first_close, w.first_different
        ),
        "last": _weights(w.last_same, w.last_close, w.last_fair, w.last_different),
    }


def _customer_tables(w: CustomerWeights) -> dict[str, FloatArray]:
    return {
        "number": _weights(w.number_same, w.number_different),
        "company": _weights(w.company_same, w.company_close, w.company_fair, w.company_different),
        "address": _weights(w.address_same, w.address_close, w.address_different),
        "postal": _weights(w.postal_same, w.postal_different),
        "city": _weights(w.city_same, w.city_different),
        "phone": _weights(w.phone_same, w.phone_different),
        "email": _weights(w.email_same, w.email_close, w.email_different),
    }


Levels = dict[str, npt.NDArray[np.int8]]
Similarities = dict[str, npt.NDArray[np.float32]]


def _email(pairs: _Pairs, close: float) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    both, same = pairs.codes("email")
    # A typo is looked for only within one domain (a slip in the domain makes another address).
    _, same_domain = pairs.codes("domain")
    sim = pairs.similarity("email", same_domain & ~same)
    sim[same] = 1.0
    near = both & (sim >= close)
    return _levels((same, SAME), (near, E_CLOSE), (both, E_DIFFERENT), size=sim.size), sim


def _exact(pairs: _Pairs, name: str) -> npt.NDArray[np.int8]:
    both, same = pairs.codes(name)
    return _levels((same, SAME), (both, DIFFERS), size=same.size)


def _nicknames(pairs: _Pairs) -> npt.NDArray[np.bool_]:
    """Pairs whose given names are nicknames of one another ("bob", "robert")."""
    both, same = pairs.codes("first")
    _, same_formal = pairs.codes("given")
    nickname = both & same_formal & ~same
    # A nickname of several names ("kate") has one formal form; look the other pairs of names
    # up once per distinct pair of names.
    nicknamed = pairs.features.codes["nicknamed"]
    maybe = np.flatnonzero(
        both & ~same_formal & (nicknamed[pairs.left] == 1) & (nicknamed[pairs.right] == 1)
    )
    if maybe.size:
        codes = pairs.features.codes["first"]
        text = pairs.features.text["first"]
        left, right = pairs.left[maybe], pairs.right[maybe]
        combined = codes[left] * len(text) + codes[right]
        distinct, first_at, inverse = np.unique(combined, return_index=True, return_inverse=True)
        related = np.fromiter(
            (is_nickname(text[left[k]], text[right[k]]) for k in first_at.tolist()),
            np.bool_,
            distinct.size,
        )
        nickname[maybe] = related[inverse]
    return nickname


def _swapped(pairs: _Pairs, mask: npt.NDArray[np.bool_], close: float) -> npt.NDArray[np.bool_]:
    """Pairs whose first name is the other's last name and the other way round."""
    out = np.zeros(pairs.left.size, np.bool_)
    where = np.flatnonzero(mask)
    if where.size:
        text = pairs.features.text
        left, right = pairs.left[where], pairs.right[where]
        scorer = Indel.normalized_similarity
        one = cpdist(text["first"][left], text["last"][right], scorer=scorer, workers=pairs.workers)
        two = cpdist(text["last"][left], text["first"][right], scorer=scorer, workers=pairs.workers)
        out[where] = (one >= close) & (two >= close)
    return out


def _compare_contacts(pairs: _Pairs, config: MatchConfig) -> tuple[Levels, Similarities]:
    size = pairs.left.size
    codes = pairs.features.codes
    email, email_sim = _email(pairs, config.close)

    first_both, first_same = pairs.codes("first")
    _, formal_same = pairs.codes("given")
    nickname = _nicknames(pairs)
    first_match = (first_same | formal_same) & ~nickname
    _, same_initial = pairs.codes("initial")
    lone = (codes["lone"][pairs.left] == 1) | (codes["lone"][pairs.right] == 1)
    first_sim = pairs.similarity("given", first_both & ~first_match & ~nickname)
    first_sim[first_match | nickname] = 1.0

    last_both, last_same = pairs.codes("last")
    last_sim = pairs.similarity("last", last_both & ~last_same)
    last_sim[last_same] = 1.0

    unsure = first_both & last_both & ~(first_match | nickname) & ~last_same
    swapped = _swapped(pairs, unsure & (first_sim < config.close), config.close)
    first_sim[swapped] = 1.0
    last_sim[swapped] = 1.0

    first = _levels(
        (first_match | swapped, SAME),
        (nickname, NICKNAME),
        (first_both & same_initial & lone, INITIAL),
        (first_both & (first_sim >= config.close), FIRST_CLOSE),
        (first_both, FIRST_DIFFERENT),
        size=size,
    )
    last = _levels(
        (last_same | swapped, SAME),
        (last_both & (last_sim >= config.close), CLOSE),
        (last_both & (last_sim >= config.fair), FAIR),
        (last_both, DIFFERENT),
        size=size,
    )
    levels = {
        "email": email,
        "phone": _exact(pairs, "phone"),
        "first": first,
        "last": last,
        "swapped": swapped.astype(np.int8),
    }
    # The fewer records share a full name, the more sharing it says: 1 for a name only these
    # two records have, 1/2 for three, and so on.
    _, same_name = pairs.codes("name")
    counts = pairs.features.codes["name_count"][pairs.left]
    rarity = np.where(same_name, 1.0 / np.maximum(counts - 1, 1), 0.0).astype(np.float32)
    return levels, {"email": email_sim, "first": first_sim, "last": last_sim, "rarity": rarity}


def _compare_customers(pairs: _Pairs, config: MatchConfig) -> tuple[Levels, Similarities]:
    size = pairs.left.size
    email, email_sim = _email(pairs, config.close)

    company_both, company_same = pairs.codes("company")
    company_sim = pairs.similarity("company", company_both & ~company_same, tokens=True)
    company_sim[company_same] = 1.0
    company = _levels(
        (company_same, SAME),
        (company_both & (company_sim >= config.close), CLOSE),
        (company_both & (company_sim >= config.fair), FAIR),
        (company_both, DIFFERENT),
        size=size,
    )

    address_both, address_same = pairs.codes("address")
    address_sim = pairs.similarity("address", address_both & ~address_same)
    address_sim[address_same] = 1.0
    house = pairs.features.codes["house"]
    # "12 Main St" and "21 Main St" are similar text but different places.
    same_house = house[pairs.left] == house[pairs.right]
    address = _levels(
        (address_same, SAME),
        (address_both & same_house & (address_sim >= config.close), E_CLOSE),
        (address_both, E_DIFFERENT),
        size=size,
    )
    levels = {
        "number": _exact(pairs, "number"),
        "company": company,
        "address": address,
        "postal": _exact(pairs, "postal"),
        "city": _exact(pairs, "city"),
        "phone": _exact(pairs, "phone"),
        "email": email,
    }
    return levels, {"email": email_sim, "company": company_sim, "address": address_sim}


def compare(features: Features, left: IntArray, right: IntArray, config: MatchConfig) -> Comparison:
    """Compare and score pairs of records.

    Args:
        features: The records.
        left: Positions of one side of each pair.
        right: Positions of the other side (the score does not depend on which side is which).
        config: Weights and similarity levels.

    Returns:
        The levels, similarities and scores of the pairs.
    """
    pairs = _Pairs(features, left, right, config.workers)
    if features.kind == "contact":
        levels, similarity = _compare_contacts(pairs, config)
        tables = _contact_tables(config.contact)
        bias = config.contact.bias
    else:
        levels, similarity = _compare_customers(pairs, config)
        tables = _customer_tables(config.customer)
        bias = config.customer.bias
    logit = np.full(left.size, bias, np.float64)
    for name, table in tables.items():
        logit += table[levels[name]]
    if features.kind == "contact":
        logit += config.contact.name_rarity * similarity["rarity"].astype(np.float64)
    score = np.round(1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0))), 4)
    return Comparison(left=left, right=right, levels=levels, similarity=similarity, score=score)


def _name_reasons(comparison: Comparison, k: int, features: Features) -> list[str]:
    levels, sim = comparison.levels, comparison.similarity
    first, last = levels["first"][k], levels["last"][k]
    if levels["swapped"][k]:
        return ["names swapped"]
    if first == SAME and last == SAME:
        return ["same name"]
    out = []
    if first == NICKNAME:
        text = features.text["first"]
        names = sorted((text[comparison.left[k]], text[comparison.right[k]]))
        out.append(f"nickname {names[0]}/{names[1]}")
    elif first == INITIAL:
        out.append("same initial")
    elif first in (SAME, FIRST_CLOSE) and last in (SAME, CLOSE):
        name_sim = (float(sim["first"][k]) + float(sim["last"][k])) / 2
        return [f"names similar {name_sim:.2f}"]
    if last == SAME:
        out.append("same last name")
    elif last == CLOSE and out:
        out.append(f"last names similar {sim['last'][k]:.2f}")
    elif first == SAME:
        out.append("same first name")
    return out


def _contact_reasons(comparison: Comparison, k: int, features: Features) -> list[str]:
    levels, sim = comparison.levels, comparison.similarity
    out = []
    if levels["email"][k] == SAME:
        out.append("same email")
    elif levels["email"][k] == E_CLOSE:
        out.append(f"emails similar {sim['email'][k]:.2f}")
    if levels["phone"][k] == SAME:
        out.append("same phone")
    return out + _name_reasons(comparison, k, features)


def _customer_reasons(comparison: Comparison, k: int) -> list[str]:
    levels, sim = comparison.levels, comparison.similarity
    out = []
    if levels["number"][k] == SAME:
        out.append("same customer number")
    if levels["company"][k] == SAME:
        out.append("same company name")
    elif levels["company"][k] in (CLOSE, FAIR):
        out.append(f"company names similar {sim['company'][k]:.2f}")
    address, postal = levels["address"][k], levels["postal"][k]
    if address in (SAME, E_CLOSE) and postal == SAME:
        out.append("same address and postal code")
    elif address in (SAME, E_CLOSE):
        out.append("same address")
    elif postal == SAME:
        out.append("same postal code")
    if levels["phone"][k] == SAME:
        out.append("same phone")
    if levels["email"][k] == SAME:
        out.append("same email")
    elif levels["email"][k] == E_CLOSE:
        out.append(f"emails similar {sim['email'][k]:.2f}")
    return out


def reasons(comparison: Comparison, k: int, features: Features) -> tuple[str, ...]:
    """The reasons pair ``k`` of a comparison scored as it did, in words.

    Args:
        comparison: A comparison from :func:`compare`.
        k: The pair's index in it.
        features: The records compared.

    Returns:
        Reasons such as ``"same email"``, ``"nickname bob/robert"``,
        ``"company names similar 0.91"``.
    """
    if features.kind == "contact":
        return tuple(_contact_reasons(comparison, k, features))
    return tuple(_customer_reasons(comparison, k))
