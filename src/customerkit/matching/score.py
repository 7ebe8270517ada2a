"""Comparing candidate pairs: a level per field, then a match weight and probability.

Everything here works on whole arrays of pairs: equality through integer codes, string
similarity through ``rapidfuzz.process.cpdist`` (normalised Indel similarity; token-sort
ratio for company names), weights through table look-ups. Batch matching compares millions of
pairs per call; the incremental index compares one record against a handful with the very same
code, so both give the same score to the same pair under the same parameters.

Each comparison puts a pair in a level: 0 is "missing on a side" and adds nothing, then the
comparison's levels in ``LEVELS`` order (1 is always "same"). Under the Fellegi-Sunter
model (see ``customerkit.matching.config``) a level's weight is ``log2(m / u)``; when two
records share the same full name (contacts) or company name (customers), the weight of that
agreement is adjusted by how common the name is among the records: two "Smith"s say less than
two "Zbyszewski"s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from customerkit.matching.config import (
    DEFAULT_PARAMETERS,
    EXTRA_DEFAULTS,
    ExtraComparison,
    MatchConfig,
    Parameters,
)
from customerkit.matching.normalize import ADDRESS_KEYS, extra_column, full_name_key, is_nickname

__all__ = [
    "LEVELS",
    "Compared",
    "Features",
    "Model",
    "build_features",
    "compare",
    "comparisons_of",
    "reasons",
    "weigh",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
LevelArray = npt.NDArray[np.int8]
SimArray = npt.NDArray[np.float32]

MISSING: Final = 0
SAME: Final = 1

#: The levels of each built-in comparison, after 0 ("missing on a side").
LEVELS: Final[Mapping[str, tuple[str, ...]]] = {
    "first": ("same", "nickname", "initial", "close", "different"),
    "last": ("same", "close", "fair", "different"),
    "company": ("same", "close", "fair", "different"),
    "number": ("same", "different"),
    "email": ("same", "close", "different"),
    "phone": ("same", "different"),
    "address": ("same", "close", "different"),
    "address_line2": ("same", "close", "different"),
    "city": ("same", "close", "different"),
    "state": ("same", "different"),
    "postal": ("same", "close", "different"),
}
#: The levels of extra comparisons, by method.
EXTRA_LEVELS: Final[Mapping[str, tuple[str, ...]]] = {
    "exact": ("same", "different"),
    "date": ("same", "close", "within a year", "different"),
    "text": ("same", "close", "fair", "different"),
}
#: The field each built-in comparison reads, as a user names it.
FIELD_OF: Final[Mapping[str, str]] = {
    "first": "first_name",
    "last": "last_name",
    "company": "company_name",
    "number": "customer_number",
    "email": "email",
    "phone": "phone",
    "address": "address_line1",
    "address_line2": "address_line2",
    "city": "city",
    "state": "state",
    "postal": "postal_code",
}
_BUILT_IN: Final[Mapping[str, tuple[str, ...]]] = {
    "contact": ("first", "last", "email", "phone", *ADDRESS_KEYS),
    "customer": ("company", "number", "email", "phone", *ADDRESS_KEYS),
}
#: The comparisons whose "same" levels the name frequency adjusts, per kind.
TF_COMPARISONS: Final[Mapping[str, tuple[str, ...]]] = {
    "contact": ("first", "last"),
    "customer": ("company",),
}
_TF_LIMIT: Final = 2.0  # bits a rare name may add to its agreement's weight
_NAME_PRIOR: Final = 10.0  # records' worth of belief in the model's u before counting names
_THREADED: Final = 10_000  # pairs from which string similarity runs on several threads


def comparisons_of(kind: str, config: MatchConfig) -> tuple[str, ...]:
    """The names of the comparisons of ``kind``: built-in ones, then the extra ones."""
    return (*_BUILT_IN[kind], *(extra.name for extra in config.comparisons))


def levels_of(name: str, config: MatchConfig) -> tuple[str, ...]:
    """The level names of comparison ``name`` (built-in or extra), after "missing"."""
    if name in LEVELS:
        return LEVELS[name]
    return EXTRA_LEVELS[_extra(name, config).method]


def _extra(name: str, config: MatchConfig) -> ExtraComparison:
    return next(extra for extra in config.comparisons if extra.name == name)


def starting_parameters(kind: str, config: MatchConfig) -> Parameters:
    """``config.parameters``, else the shipped ones, with defaults for any comparison missing."""
    given = config.parameters or DEFAULT_PARAMETERS[kind]
    shipped = DEFAULT_PARAMETERS[kind]
    m, u = dict(given.m), dict(given.u)
    for name in comparisons_of(kind, config):
        size = len(levels_of(name, config))
        if len(m.get(name, ())) == size and len(u.get(name, ())) == size:
            continue
        if name in LEVELS:
            m[name], u[name] = shipped.m[name], shipped.u[name]
        else:
            m[name], u[name] = EXTRA_DEFAULTS[_extra(name, config).method]
    return Parameters(prior=given.prior, m=m, u=u, records=given.records)


@attrs.frozen(kw_only=True, eq=False)
class Model:
    """Parameters turned into weight tables, ready to score with.

    Attributes:
        parameters: The parameters.
        names: The comparisons, in order.
        weights: Comparison -> weight (bits) per level, level 0 (missing) being 0.
        u_same: Comparison -> ``u`` of its "same" level (for the name frequency adjustment).
        prior_weight: The prior's log-odds in bits.
    """

    parameters: Parameters
    names: tuple[str, ...]
    weights: Mapping[str, FloatArray]
    u_same: Mapping[str, float]
    prior_weight: float

    @classmethod
    def of(cls, parameters: Parameters, names: Sequence[str]) -> Model:
        """The model of ``parameters`` for the comparisons ``names``."""
        weights = {
            name: np.r_[
                0.0,
                np.log2(np.asarray(parameters.m[name], np.float64))
                - np.log2(np.asarray(parameters.u[name], np.float64)),
            ]
            for name in names
        }
        prior = parameters.prior
        return cls(
            parameters=parameters,
            names=tuple(names),
            weights=weights,
            u_same={name: parameters.u[name][0] for name in names},
            prior_weight=float(np.log2(prior / (1.0 - prior))),
        )


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


@attrs.frozen(kw_only=True, eq=False)
class Compared:
    """The comparison of many pairs: a level per comparison, similarities and the scores.

    Attributes:
        left: Positions of the left records.
        right: Positions of the right records.
        levels: Comparison -> level per pair.
        similarity: Comparison -> similarity in [0, 1] per pair (where one was computed).
        tf: The name frequency adjustment per pair, in bits (0 where names differ).
        weight: Match weight per pair (bits).
        score: Match probability per pair, in [0, 1].
        swapped: Per pair, whether first and last names were swapped (contacts).
    """

    left: IntArray
    right: IntArray
    levels: dict[str, LevelArray]
    similarity: dict[str, SimArray]
    tf: FloatArray
    weight: FloatArray
    score: FloatArray
    swapped: npt.NDArray[np.bool_]


class _Pairs:
    """Helpers over one batch of pairs."""

    def __init__(self, features: Features, left: IntArray, right: IntArray, workers: int) -> None:
        self.features = features
        self.left = left
        self.right = right
        self.size = int(left.size)
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
        self,
        name: str,
        mask: npt.NDArray[np.bool_],
        *,
        scorer: Callable[..., float] = Indel.normalized_similarity,
        scale: float = 1.0,
    ) -> SimArray:
        """Similarity of column ``name`` where ``mask`` holds, 1 where equal, else 0."""
        out = np.zeros(self.size, np.float32)
        where = np.flatnonzero(mask)
        if where.size:
            text = self.features.text[name]
            left, right = text[self.left[where]], text[self.right[where]]
            out[where] = cpdist(left, right, scorer=scorer, workers=self.workers) / np.float32(
                scale
            )
        return out


def _levels(*choices: tuple[npt.NDArray[np.bool_], int], size: int) -> LevelArray:
    """The level of each pair: the first choice whose mask holds (later ones do not override)."""
    out = np.zeros(size, np.int8)
    for mask, level in reversed(choices):
        out[mask] = level
    return out


def _exact(pairs: _Pairs, name: str) -> LevelArray:
    both, same = pairs.codes(name)
    return _levels((same, SAME), (both, 2), size=pairs.size)


def _graded(
    pairs: _Pairs, name: str, cuts: Sequence[float], *, tokens: bool = False
) -> tuple[LevelArray, SimArray]:
    """Same, then one level per similarity cut (high to low), then different."""
    both, same = pairs.codes(name)
    if tokens:
        sim = pairs.similarity(name, both & ~same, scorer=fuzz.token_sort_ratio, scale=100.0)
    else:
        sim = pairs.similarity(name, both & ~same)
    sim[same] = 1.0
    choices = [(same, SAME)]
    choices += [(both & (sim >= cut), level) for level, cut in enumerate(cuts, start=2)]
    choices.append((both, len(cuts) + 2))
    return _levels(*choices, size=pairs.size), sim


def _email(pairs: _Pairs, config: MatchConfig) -> tuple[LevelArray, SimArray]:
    both, same = pairs.codes("email")
    # A typo is looked for only within one domain (a slip in the domain makes another address),
    # and not where the digits differ: "john1@" and "john2@" are two accounts.
    _, same_domain = pairs.codes("domain")
    _, same_digits = pairs.codes("email_digits")
    sim = pairs.similarity("email", same_domain & same_digits & ~same)
    sim[same] = 1.0
    near = both & (sim >= config.close)
    return _levels((same, SAME), (near, 2), (both, 3), size=pairs.size), sim


def _address(pairs: _Pairs, config: MatchConfig) -> tuple[LevelArray, SimArray]:
    both, same = pairs.codes("address")
    sim = pairs.similarity("address", both & ~same)
    sim[same] = 1.0
    house = pairs.features.codes["house"]
    # "12 Main St" and "21 Main St" are similar text but different places.
    same_house = house[pairs.left] == house[pairs.right]
    near = both & same_house & (sim >= config.close)
    return _levels((same, SAME), (near, 2), (both, 3), size=pairs.size), sim


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
    out = np.zeros(pairs.size, np.bool_)
    where = np.flatnonzero(mask)
    if where.size:
        text = pairs.features.text
        left, right = pairs.left[where], pairs.right[where]
        scorer = Indel.normalized_similarity
        one = cpdist(text["first"][left], text["last"][right], scorer=scorer, workers=pairs.workers)
        two = cpdist(text["last"][left], text["first"][right], scorer=scorer, workers=pairs.workers)
        out[where] = (one >= close) & (two >= close)
    return out


def _person_names(
    pairs: _Pairs, config: MatchConfig, levels: dict[str, LevelArray], sims: dict[str, SimArray]
) -> npt.NDArray[np.bool_]:
    """Levels of first and last names (contacts); returns which pairs had them swapped."""
    codes = pairs.features.codes
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

    levels["first"] = _levels(
        (first_match | swapped, SAME),
        (nickname, 2),
        (first_both & same_initial & lone, 3),
        (first_both & (first_sim >= config.close), 4),
        (first_both, 5),
        size=pairs.size,
    )
    levels["last"] = _levels(
        (last_same | swapped, SAME),
        (last_both & (last_sim >= config.close), 2),
        (last_both & (last_sim >= config.fair), 3),
        (last_both, 4),
        size=pairs.size,
    )
    sims["first"], sims["last"] = first_sim, last_sim
    return swapped


def _date(pairs: _Pairs, name: str) -> tuple[LevelArray, SimArray]:
    """Same date; day and month swapped or one digit off; within a year; different."""
    both, same = pairs.codes(name)
    sim = pairs.similarity(name, both & ~same)
    sim[same] = 1.0
    where = np.flatnonzero(both & ~same)
    close = np.zeros(pairs.size, np.bool_)
    within = np.zeros(pairs.size, np.bool_)
    if where.size:
        text = pairs.features.text[name]
        left, right = text[pairs.left[where]], text[pairs.right[where]]
        close[where] = (sim[where] >= 0.875) | np.fromiter(
            map(_day_month_swapped, left, right), np.bool_, where.size
        )
        within[where] = np.fromiter(map(_within_a_year, left, right), np.bool_, where.size)
    levels = _levels((same, SAME), (close, 2), (within, 3), (both, 4), size=pairs.size)
    return levels, sim


def _day_month_swapped(left: str, right: str) -> bool:
    return (
        len(left) == len(right) == 8
        and left[:4] == right[:4]
        and left[4:6] == right[6:8]
        and (left[6:8] == right[4:6])
    )


def _day_number(value: str) -> int | None:
    if len(value) != 8 or not value.isdigit():
        return None
    year, month, day = int(value[:4]), int(value[4:6]), int(value[6:8])
    return year * 372 + (month - 1) * 31 + (day - 1)  # close enough to days for "a year"


def _within_a_year(left: str, right: str) -> bool:
    a, b = _day_number(left), _day_number(right)
    return a is not None and b is not None and abs(a - b) <= 372


def _extra_levels(
    pairs: _Pairs, column: str, extra: ExtraComparison, config: MatchConfig
) -> tuple[LevelArray, SimArray]:
    if extra.method == "exact":
        level = _exact(pairs, column)
        return level, (level == SAME).astype(np.float32)
    if extra.method == "date":
        return _date(pairs, column)
    return _graded(pairs, column, (config.close, config.fair))


def _compare_levels(
    pairs: _Pairs, config: MatchConfig
) -> tuple[dict[str, LevelArray], dict[str, SimArray], npt.NDArray[np.bool_]]:
    """The level of every comparison of every pair, and the similarities behind them."""
    kind = pairs.features.kind
    levels: dict[str, LevelArray] = {}
    sims: dict[str, SimArray] = {}
    swapped = np.zeros(pairs.size, np.bool_)
    if kind == "contact":
        swapped = _person_names(pairs, config, levels, sims)
    else:
        levels["company"], sims["company"] = _graded(
            pairs, "company", (config.close, config.fair), tokens=True
        )
        levels["number"] = _exact(pairs, "number")
    levels["email"], sims["email"] = _email(pairs, config)
    levels["phone"] = _exact(pairs, "phone")
    levels["address"], sims["address"] = _address(pairs, config)
    for name in ("address_line2", "city"):
        levels[name], sims[name] = _graded(pairs, name, (config.close,))
    levels["state"] = _exact(pairs, "state")
    levels["postal"], sims["postal"] = _graded(pairs, "postal", (0.75,))
    for column, extra in pairs.features.extras.items():
        levels[extra.name], sims[extra.name] = _extra_levels(pairs, column, extra, config)
    return levels, sims, swapped


def _name_adjustment(pairs: _Pairs, levels: Mapping[str, LevelArray], model: Model) -> FloatArray:
    """Bits added to the agreement on a name for how rare (or common) the name is.

    The name's chance of agreeing by accident is its frequency among the other records (those
    two aside), smoothed towards the model's ``u``, as if ``_NAME_PRIOR`` records had been
    seen before: a few records say little about how common a name is.
    """
    kind = pairs.features.kind
    names = TF_COMPARISONS[kind]
    _, same_name = pairs.codes("name")
    agree = same_name.copy()
    for name in names:
        agree &= levels[name] == SAME
    out = np.zeros(pairs.size, np.float64)
    where = np.flatnonzero(agree)
    if where.size:
        chance = float(np.prod([model.u_same[name] for name in names]))
        others = pairs.features.codes["name_count"][pairs.left[where]] - 2
        seen = max(pairs.features.named - 2, 0)
        frequency = (np.maximum(others, 0) + _NAME_PRIOR * chance) / (seen + _NAME_PRIOR)
        out[where] = np.minimum(np.log2(chance / frequency), _TF_LIMIT)
    return out


def compare(
    features: Features,
    left: IntArray,
    right: IntArray,
    config: MatchConfig,
    model: Model,
) -> Compared:
    """Compare and score pairs of records.

    Args:
        features: The records.
        left: Positions of one side of each pair.
        right: Positions of the other side (the score does not depend on which side is which).
        config: Similarity levels.
        model: The parameters to score with.

    Returns:
        The levels, similarities, match weights and probabilities of the pairs.
    """
    pairs = _Pairs(features, left, right, config.workers)
    levels, similarity, swapped = _compare_levels(pairs, config)
    tf, weight = weigh(features, left, right, levels, model)
    return Compared(
        left=left,
        right=right,
        levels=levels,
        similarity=similarity,
        tf=tf,
        weight=weight,
        score=probability(weight),
        swapped=swapped,
    )


def weigh(
    features: Features,
    left: IntArray,
    right: IntArray,
    levels: Mapping[str, LevelArray],
    model: Model,
) -> tuple[FloatArray, FloatArray]:
    """(name frequency adjustment, match weight) of pairs whose levels are known, in bits."""
    pairs = _Pairs(features, left, right, 1)
    tf = _name_adjustment(pairs, levels, model)
    weight = np.full(left.size, model.prior_weight, np.float64) + tf
    for name in model.names:
        weight += model.weights[name][levels[name]]
    return tf, weight


def probability(weight: FloatArray) -> FloatArray:
    """Match probabilities of match weights (bits), rounded to four decimals."""
    return np.round(1.0 / (1.0 + np.exp2(-np.clip(weight, -60.0, 60.0))), 4)


def level_matrix(compared: Compared, names: Sequence[str]) -> npt.NDArray[np.int8]:
    """The levels as a matrix: a row per pair, a column per comparison in ``names`` order."""
    return np.stack([compared.levels[name] for name in names], axis=1)


# --- reasons -------------------------------------------------------------------------------------

_LABELS: Final[Mapping[str, str]] = {
    "company": "company name",
    "number": "customer number",
    "email": "email",
    "phone": "phone",
    "address": "address",
    "address_line2": "address line 2",
    "city": "city",
    "state": "state",
    "postal": "postal code",
}
_PLURAL: Final[Mapping[str, str]] = {
    "company": "company names",
    "email": "emails",
    "address": "addresses",
    "address_line2": "address lines 2",
    "city": "cities",
    "postal": "postal codes",
}


# Identifiers first, then names, then the rest in the model's order (extras last).
_REASON_ORDER: Final[Mapping[str, int]] = {"number": -3, "email": -2, "phone": -1}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " "))


def _level_reason(name: str, level: str, sim: float) -> str:
    if level == "same":
        return f"same {_label(name)}"
    if level in {"close", "fair"}:
        return f"{_PLURAL.get(name, _label(name) + 's')} similar {sim:.2f}"
    return f"{_label(name)} {level}"


def _name_reasons(compared: Compared, k: int, features: Features) -> list[str]:
    levels, sim = compared.levels, compared.similarity
    first, last = levels["first"][k], levels["last"][k]
    if compared.swapped[k]:
        return ["names swapped"]
    if first == SAME and last == SAME:
        return ["same name"]
    out = []
    if first == 2:
        text = features.text["first"]
        names = sorted((text[compared.left[k]], text[compared.right[k]]))
        out.append(f"nickname {names[0]}/{names[1]}")
    elif first == 3:
        out.append("same initial")
    elif first in (SAME, 4) and last in (SAME, 2):
        name_sim = (float(sim["first"][k]) + float(sim["last"][k])) / 2
        return [f"names similar {name_sim:.2f}"]
    if last == SAME:
        out.append("same last name")
    elif last == 2 and out:
        out.append(f"last names similar {sim['last'][k]:.2f}")
    elif first == SAME:
        out.append("same first name")
    return out


def reasons(
    compared: Compared, k: int, features: Features, model: Model, config: MatchConfig
) -> tuple[str, ...]:
    """The reasons pair ``k`` scored as it did, in words: its levels with a positive weight.

    Returns:
        Reasons such as ``"same email"``, ``"nickname bob/robert"``,
        ``"company names similar 0.91"``.
    """
    out: list[str] = []
    for name in sorted(model.names, key=lambda name: _REASON_ORDER.get(name, 0)):
        if name == "last":
            out.extend(_name_reasons(compared, k, features))
            continue
        if name == "first":
            continue
        level = int(compared.levels[name][k])
        if level == MISSING or model.weights[name][level] <= 0:
            continue
        sim = float(compared.similarity[name][k]) if name in compared.similarity else 1.0
        out.append(_level_reason(name, levels_of(name, config)[level - 1], sim))
    return tuple(out)
