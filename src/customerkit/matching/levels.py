"""The level of each comparison for a batch of pairs, computed on whole arrays.

Equality goes through integer codes, string similarity through ``rapidfuzz.process.cpdist``
(normalised Indel similarity; token-sort ratio for company names). One rule per field here:
a new comparison, or a change to how a field's levels are told apart, changes this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz
from rapidfuzz.distance import Indel
from rapidfuzz.process import cpdist

from customerkit.matching.comparisons import SAME, IntArray, LevelArray, SimArray
from customerkit.matching.config import ExtraComparison, MatchConfig
from customerkit.matching.features import Features
from customerkit.matching.normalize import is_nickname

_THREADED: Final = 10_000  # pairs from which string similarity runs on several threads


class Pairs:
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


def _exact(pairs: Pairs, name: str) -> LevelArray:
    both, same = pairs.codes(name)
    return _levels((same, SAME), (both, 2), size=pairs.size)


def _graded(
    pairs: Pairs, name: str, cuts: Sequence[float], *, tokens: bool = False
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


def _email(pairs: Pairs, config: MatchConfig) -> tuple[LevelArray, SimArray]:
    both, same = pairs.codes("email")
    # A typo is looked for only within one domain (a slip in the domain makes another address),
    # and not where the digits differ: "john1@" and "john2@" are two accounts.
    _, same_domain = pairs.codes("domain")
    _, same_digits = pairs.codes("email_digits")
    sim = pairs.similarity("email", same_domain & same_digits & ~same)
    sim[same] = 1.0
    near = both & (sim >= config.close)
    return _levels((same, SAME), (near, 2), (both, 3), size=pairs.size), sim


def _address(pairs: Pairs, config: MatchConfig) -> tuple[LevelArray, SimArray]:
    both, same = pairs.codes("address")
    sim = pairs.similarity("address", both & ~same)
    sim[same] = 1.0
    house = pairs.features.codes["house"]
    # "12 Main St" and "21 Main St" are similar text but different places.
    same_house = house[pairs.left] == house[pairs.right]
    near = both & same_house & (sim >= config.close)
    return _levels((same, SAME), (near, 2), (both, 3), size=pairs.size), sim


def _nicknames(pairs: Pairs) -> npt.NDArray[np.bool_]:
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


def _swapped(pairs: Pairs, mask: npt.NDArray[np.bool_], close: float) -> npt.NDArray[np.bool_]:
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
    pairs: Pairs, config: MatchConfig, levels: dict[str, LevelArray], sims: dict[str, SimArray]
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


def _date(pairs: Pairs, name: str) -> tuple[LevelArray, SimArray]:
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
    pairs: Pairs, column: str, extra: ExtraComparison, config: MatchConfig
) -> tuple[LevelArray, SimArray]:
    if extra.method == "exact":
        level = _exact(pairs, column)
        return level, (level == SAME).astype(np.float32)
    if extra.method == "date":
        return _date(pairs, column)
    return _graded(pairs, column, (config.close, config.fair))


def compare_levels(
    pairs: Pairs, config: MatchConfig
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
