"""Matching settings: comparisons, the Fellegi-Sunter model's parameters, threshold and blocking.

Each pair of records is compared field by field; each field lands in a *level* ("same",
"close", "different", ...). Under the Fellegi-Sunter model a level has two probabilities: ``m``,
how often true duplicates land in it, and ``u``, how often two different records land in it by
chance. The level's weight is ``log2(m / u)``; a pair's *match weight* is the prior's log-odds
plus the weights of its levels, and its score is the match probability ``2^w / (1 + 2^w)``.
A field blank on either side adds nothing.

The shipped ``DEFAULT_PARAMETERS`` are only a starting point: ``find_duplicates`` starts ``u``
from random pairs of the records given, then estimates ``m``, ``u`` and the prior by expectation
maximisation over the compared pairs.
A fitted ``MatchConfig`` (``report.config``) can be saved as JSON and used again, so a
book's ``find_similar`` scores as the batch did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
import cattrs

from customerkit.errors import MatchConfigError

__all__ = [
    "DEFAULT_PARAMETERS",
    "ExtraComparison",
    "MatchConfig",
    "Parameters",
]

Method = Literal["exact", "date", "text"]
METHODS: Final = ("exact", "date", "text")


def _unit_interval(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"{attribute.name} must be between 0 and 1, not {value!r}"
        raise MatchConfigError(msg, field=attribute.name)


def _at_least_two(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 2:
        msg = f"{attribute.name} must be at least 2, not {value!r}"
        raise MatchConfigError(msg, field=attribute.name)


def _method(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in METHODS:
        msg = f"method must be one of {', '.join(METHODS)}, not {value!r}"
        raise MatchConfigError(msg, field="method")


def _field_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        msg = "an extra comparison needs the name of the column to compare"
        raise MatchConfigError(msg, field="field")


@attrs.frozen
class ExtraComparison:
    """A comparison on a column of your own, beside the built-in ones.

    Attributes:
        field: The column (mapping key, attribute or DataFrame column) to compare.
        method: ``"exact"`` for identifiers (VIN, tax id, customer number: same or different,
            case and separators ignored); ``"date"`` for dates such as a birth date (same, day
            and month swapped or one digit off, within a year, different); ``"text"`` for free
            text (same, close, fair, different by similarity). Exact and date columns also
            propose candidate pairs (records with the same value are always compared).
    """

    field: str = attrs.field(validator=_field_name)
    method: Method = attrs.field(default="text", validator=_method)

    @property
    def name(self) -> str:
        """The comparison's name in parameters and explanations: the column's name."""
        return self.field


def _probabilities(
    instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]
) -> None:
    for name, levels in value.items():
        if not levels or not all(0.0 < p <= 1.0 for p in levels):
            msg = f"{attribute.name}[{name!r}] must be probabilities in (0, 1], not {levels!r}"
            raise MatchConfigError(msg, field=attribute.name)


def _frozen_levels(value: Mapping[str, Any]) -> dict[str, tuple[float, ...]]:
    return {str(name): tuple(float(p) for p in levels) for name, levels in value.items()}


def _prior(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value < 1.0:
        msg = f"prior must be strictly between 0 and 1, not {value!r}"
        raise MatchConfigError(msg, field="prior")


@attrs.frozen(kw_only=True)
class Parameters:
    """The Fellegi-Sunter model: per comparison, ``m`` and ``u`` of each level, and the prior.

    Attributes:
        prior: The probability that a compared pair is a duplicate before looking at it.
        m: Comparison name -> per level (in the comparison's level order), the probability
            that two records of the same customer or person land in it.
        u: Comparison name -> per level, the probability that two different ones do.
        records: How many records the parameters were estimated from (0: not estimated).
    """

    prior: float = attrs.field(validator=_prior)
    m: Mapping[str, tuple[float, ...]] = attrs.field(
        converter=_frozen_levels, validator=_probabilities, eq=False
    )
    u: Mapping[str, tuple[float, ...]] = attrs.field(
        converter=_frozen_levels, validator=_probabilities, eq=False
    )
    records: int = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parameters):
            return NotImplemented
        return (self.prior, dict(self.m), dict(self.u), self.records) == (
            other.prior,
            dict(other.m),
            dict(other.u),
            other.records,
        )

    def __hash__(self) -> int:
        return hash((self.prior, tuple(sorted(self.m.items())), tuple(sorted(self.u.items()))))


# Starting points for estimation, and the parameters used when there are too few records to
# estimate from. Level order per comparison is the one in ``score.LEVELS``. The values are
# round figures between what estimation finds on public person data (FEBRL) and on dealer-like
# synthetic data; estimation replaces them.
_SAME_DIFF_M = (0.9, 0.1)
_ADDRESS_M = (0.65, 0.2, 0.15)
_ADDRESS_U = (0.0005, 0.002, 0.9975)
# Contacts carry their customer's address, so the place comparisons start alike for both kinds.
_PLACE_M = {
    "address": _ADDRESS_M,
    "address_line2": _ADDRESS_M,
    "city": (0.8, 0.1, 0.1),
    "state": _SAME_DIFF_M,
    "postal": (0.8, 0.1, 0.1),
}
_PLACE_U = {
    "address": _ADDRESS_U,
    "address_line2": _ADDRESS_U,
    "city": (0.005, 0.005, 0.99),
    "state": (0.2, 0.8),
    "postal": (0.003, 0.02, 0.977),
}
#: The shipped parameters, per kind.
DEFAULT_PARAMETERS: Final[Mapping[str, Parameters]] = {
    "contact": Parameters(
        prior=0.1,
        m={
            "first": (0.75, 0.05, 0.02, 0.1, 0.08),
            "last": (0.8, 0.1, 0.04, 0.06),
            "email": (0.85, 0.05, 0.1),
            "phone": _SAME_DIFF_M,
            **_PLACE_M,
        },
        u={
            "first": (0.01, 0.002, 0.01, 0.02, 0.958),
            "last": (0.003, 0.005, 0.02, 0.972),
            "email": (0.0001, 0.005, 0.9949),
            "phone": (0.0001, 0.9999),
            **_PLACE_U,
        },
    ),
    "customer": Parameters(
        prior=0.1,
        m={
            "company": (0.7, 0.12, 0.08, 0.1),
            "number": (0.6, 0.4),
            **_PLACE_M,
            "phone": (0.75, 0.25),
            "email": (0.75, 0.05, 0.2),
        },
        u={
            "company": (0.0005, 0.001, 0.01, 0.9885),
            "number": (0.0001, 0.9999),
            **_PLACE_U,
            "phone": (0.0001, 0.9999),
            "email": (0.0001, 0.0005, 0.9994),
        },
    ),
}
#: Starting points for extra comparisons, by method.
EXTRA_DEFAULTS: Final[Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "exact": ((0.9, 0.1), (0.0001, 0.9999)),
    "date": ((0.8, 0.1, 0.05, 0.05), (0.0005, 0.002, 0.02, 0.9775)),
    "text": ((0.75, 0.1, 0.05, 0.1), (0.001, 0.004, 0.02, 0.975)),
}


@attrs.frozen(kw_only=True)
class MatchConfig:
    """How duplicates are found, scored and grouped.

    Attributes:
        threshold: Pairs whose match probability is at least this are reported (and may join
            groups).
        comparisons: Comparisons on extra columns (see ``ExtraComparison``).
        parameters: The model to score with; None starts from ``DEFAULT_PARAMETERS``.
        estimate: Estimate the parameters from the records being matched (starting from
            ``parameters``) when there are at least ``min_records`` of them. ``report.config``
            holds the result with ``estimate=False``, to score other records the same way.
        min_records: Fewest records to estimate from; smaller inputs use ``parameters``.
        seed: Seed of the random pairs estimation samples (results are reproducible).
        close: Similarity (0-1) from which two values are "close".
        fair: Similarity (0-1) from which two names are "fair".
        block_cap: Blocks of at most this many records compare every pair; larger blocks
            compare each record with its ``window - 1`` neighbours in sorted order, so a
            common key never costs n² comparisons.
        window: Sorted-neighbourhood window in oversized blocks.
        link_fraction: A record (or group) joins a group only when at least this fraction of
            the pairs between them are above the threshold, so chains of weak links do not pull
            unrelated records together.
        workers: Threads rapidfuzz may use (``-1``: all cores).
        chunk_size: Candidate pairs compared at a time (bounds memory).
    """

    threshold: float = attrs.field(default=0.5, validator=_unit_interval)
    comparisons: tuple[ExtraComparison, ...] = attrs.field(default=(), converter=tuple)
    parameters: Parameters | None = None
    estimate: bool = True
    min_records: int = attrs.field(default=500, validator=_at_least_two)
    seed: int = 0
    close: float = attrs.field(default=0.85, validator=_unit_interval)
    fair: float = attrs.field(default=0.7, validator=_unit_interval)
    block_cap: int = attrs.field(default=16, validator=_at_least_two)
    window: int = attrs.field(default=6, validator=_at_least_two)
    link_fraction: float = attrs.field(default=0.5, validator=_unit_interval)
    workers: int = -1
    chunk_size: int = attrs.field(default=1_000_000, validator=_at_least_two)

    def to_json(self) -> str:
        """This configuration as JSON text (see ``from_json``)."""
        return json.dumps(_converter.unstructure(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MatchConfig:
        """A configuration saved with ``to_json``.

        Raises:
            MatchConfigError: The text is not a saved configuration.
        """
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                msg = "a saved MatchConfig is a JSON object"
                raise MatchConfigError(msg, field="config")
            return _converter.structure(data, cls)
        except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as error:
            if isinstance(error, MatchConfigError):
                raise
            msg = f"not a saved MatchConfig: {error.__class__.__name__}"
            raise MatchConfigError(msg, field="config") from error


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_unstructure_hook(
    Parameters,
    lambda p: {
        "prior": p.prior,
        "m": {k: list(v) for k, v in p.m.items()},
        "u": {k: list(v) for k, v in p.u.items()},
        "records": p.records,
    },
)
_converter.register_structure_hook(Parameters, lambda data, _: Parameters(**data))
