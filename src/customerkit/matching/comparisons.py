"""The comparisons of each kind of record, their levels, and the model that weighs them.

Each comparison puts a pair in a level: 0 is "missing on a side" and adds nothing, then the
comparison's levels in ``LEVELS`` order (1 is always "same"). Under the Fellegi-Sunter
model (see ``customerkit.matching.config``) a level's weight is ``log2(m / u)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.matching.config import (
    DEFAULT_PARAMETERS,
    EXTRA_DEFAULTS,
    ExtraComparison,
    MatchConfig,
    Parameters,
)
from customerkit.matching.normalize import ADDRESS_KEYS

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


def comparisons_of(kind: str, config: MatchConfig) -> tuple[str, ...]:
    """The names of the comparisons of ``kind``: built-in ones, then the extra ones."""
    return (*_BUILT_IN[kind], *(extra.name for extra in config.comparisons))


def levels_of(name: str, config: MatchConfig) -> tuple[str, ...]:
    """The level names of comparison ``name`` (built-in or extra), after "missing"."""
    if name in LEVELS:
        return LEVELS[name]
    return EXTRA_LEVELS[_extra(name, config).method]


def level_sizes(names: Sequence[str], config: MatchConfig) -> list[int]:
    """How many levels each of the comparisons ``names`` has (how level patterns are coded)."""
    return [len(levels_of(name, config)) for name in names]


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
