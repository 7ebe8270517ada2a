"""A book's settings: every threshold the rules leave configurable.

``BookConfig`` is plain data: it belongs to no backend and no service, so a store, a rule or
a test can build one without importing the machinery that uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import attrs

from customerkit.errors import ValidationError
from customerkit.matching.config import MatchConfig
from customerkit.model import Role, Survivorship

__all__ = ["BookConfig"]


@attrs.frozen(kw_only=True)
class BookConfig:
    """Settings of a book; every threshold the rules leave configurable.

    Attributes:
        phone_region: Region for phone numbers typed without a country code.
        unused_after_months: Calendar months without communication that make a contact unused.
        unused_prompt_threshold: How many unused contacts make ``should_prompt`` true.
        unused_prompt_role: The lowest role that is prompted to clean up.
        recent_window: Default window of ``customers.recent()``.
        max_merge_size: Most records one merge may take (no small cap, but a limit).
        survivorship: Per field, how a merge picks the surviving value (``MAIN`` unless
            given: ``{"phone": Survivorship.MOST_RECENT}``).
        match: How ``find_duplicates`` and ``find_similar`` compare, score and group
            contacts and customers.
        contact_match: Replaces ``match`` for contacts (e.g. one fitted with ``ck.fit`` on
            labelled contacts).
        customer_match: Replaces ``match`` for customers.
    """

    phone_region: str = "US"  # rule U4
    unused_after_months: int = 6
    unused_prompt_threshold: int = 30  # rule K5
    unused_prompt_role: Role = Role.SERVICE_ADVISOR  # rule K5
    recent_window: timedelta = timedelta(days=30)  # rule C8
    max_merge_size: int = 1000  # rule M4
    survivorship: Mapping[str, Survivorship] = attrs.field(factory=dict)
    match: MatchConfig = attrs.field(default=MatchConfig())
    contact_match: MatchConfig | None = attrs.field(default=None)
    customer_match: MatchConfig | None = attrs.field(default=None)

    @match.validator
    @contact_match.validator
    @customer_match.validator
    def _check_match(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, MatchConfig) and not (value is None and attribute.name != "match"):
            raise ValidationError({attribute.name: "pass a customerkit.MatchConfig"})

    def match_for(self, kind: Literal["contact", "customer"]) -> MatchConfig:
        """The matching settings for contacts or customers."""
        chosen = self.contact_match if kind == "contact" else self.customer_match
        return chosen or self.match
