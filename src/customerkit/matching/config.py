"""Matching settings: comparison weights, threshold and blocking limits (rules M1, M2, M5).

The score of a pair is a probability in the Fellegi-Sunter sense: each field compared falls into
a *level* (same, similar, different, ...), each level carries a weight (a log-odds), and the
score is ``1 / (1 + exp(-(bias + sum of weights)))``. A field missing on either side adds
nothing. The default weights were fitted by logistic regression on labelled synthetic data
(see ``benchmarks/bench_duplicates.py --calibrate``) and rounded.
"""

from __future__ import annotations

import attrs

__all__ = ["ContactWeights", "CustomerWeights", "MatchConfig"]


def _unit_interval(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"{attribute.name} must be between 0 and 1, not {value!r}"
        raise ValueError(msg)


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 2:
        msg = f"{attribute.name} must be at least 2, not {value!r}"
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class ContactWeights:
    """Log-odds weights of the contact comparison levels.

    Names are compared on their folded form, given names through their formal name ("Bob" and
    "Robert" are a nickname match); "close" is a rapidfuzz similarity of at least
    ``MatchConfig.close`` and "fair" at least ``MatchConfig.fair``. ``name_rarity`` is added
    in full when two records share a full name no other record (of their scope) has, half of it
    when three records share it, a third for four, and so on: "John Smith" twice among a
    million contacts says little, twice among one customer's contacts says a lot.
    """

    bias: float = -5.5
    email_same: float = 12.0
    email_close: float = 2.5
    email_different: float = -5.5
    phone_same: float = 12.0
    phone_different: float = -6.0
    first_same: float = 1.0
    first_nickname: float = 0.8
    first_initial: float = 0.5
    first_close: float = 1.0
    first_different: float = -2.5
    last_same: float = 1.0
    last_close: float = 1.3
    last_fair: float = 0.4
    last_different: float = -2.5
    name_rarity: float = 4.5


@attrs.frozen(kw_only=True)
class CustomerWeights:
    """Log-odds weights of the customer comparison levels.

    Company names are compared without legal suffixes; addresses with street types and
    directionals abbreviated; postal codes on their first five digits.
    """

    bias: float = -4.0
    number_same: float = 8.0
    number_different: float = -0.5
    company_same: float = 2.5
    company_close: float = 2.0
    company_fair: float = 0.5
    company_different: float = -3.0
    address_same: float = 3.0
    address_close: float = 2.0
    address_different: float = -3.0
    postal_same: float = 1.5
    postal_different: float = -2.5
    city_same: float = 0.5
    city_different: float = -1.0
    phone_same: float = 4.0
    phone_different: float = -1.0
    email_same: float = 3.5
    email_close: float = 1.0
    email_different: float = -1.5


@attrs.frozen(kw_only=True)
class MatchConfig:
    """How duplicates are found, scored and grouped.

    Attributes:
        threshold: Pairs scoring at least this are reported (and may join groups).
        contact: Weights for contacts.
        customer: Weights for customers.
        close: Similarity (0-1) from which two names, emails or addresses are "close".
        fair: Similarity (0-1) from which two names are "fair" (last names, company names).
        block_cap: Blocks of at most this many records compare every pair; larger blocks
            compare each record with its ``window - 1`` neighbours in sorted order, so a
            common key never costs n² comparisons (M5).
        window: Sorted-neighbourhood window in oversized blocks.
        link_fraction: A record (or group) joins a group only when at least this fraction of
            the pairs between them are above the threshold, so chains of weak links do not pull
            unrelated records together (M2).
        workers: Threads rapidfuzz may use (``-1``: all cores).
        chunk_size: Candidate pairs scored at a time (bounds memory).
    """

    threshold: float = attrs.field(default=0.5, validator=_unit_interval)
    contact: ContactWeights = ContactWeights()
    customer: CustomerWeights = CustomerWeights()
    close: float = attrs.field(default=0.85, validator=_unit_interval)
    fair: float = attrs.field(default=0.7, validator=_unit_interval)
    block_cap: int = attrs.field(default=16, validator=_positive)
    window: int = attrs.field(default=6, validator=_positive)
    link_fraction: float = attrs.field(default=0.5, validator=_unit_interval)
    workers: int = -1
    chunk_size: int = attrs.field(default=1_000_000, validator=_positive)
