"""Search queries and their results, independent of where the index lives (rules S1-S5)."""

from __future__ import annotations

import attrs

from customerkit.errors import QueryTooShort, ValidationError
from customerkit.model import Customer, SearchField
from customerkit.text import query_words

#: Longest query accepted, in code points, before any index or database sees it.
MAX_QUERY_LENGTH = 256
#: Most hits one search may return.
MAX_LIMIT = 500
#: Fields searched by ``SearchField.ALL``, in the order a hit's field is reported.
ALL_FIELDS: tuple[SearchField, ...] = (
    SearchField.NAME,
    SearchField.CITY,
    SearchField.STATE,
    SearchField.NUMBER,
)


@attrs.frozen(kw_only=True)
class SearchDocument:
    """What the search index knows of a customer: its raw searchable fields."""

    id: str
    location_id: str
    name: str
    city: str = ""
    state: str = ""
    number: str = ""

    def text(self, field: SearchField) -> str:
        """The raw text of one searchable field."""
        return {
            SearchField.NAME: self.name,
            SearchField.CITY: self.city,
            SearchField.STATE: self.state,
            SearchField.NUMBER: self.number,
        }[field]


@attrs.frozen(kw_only=True)
class SearchQuery:
    """A parsed, validated query: folded words, the fields to search, fuzzy or not.

    ``exact_only`` is set for the one rule S3 exception: a 2-letter state code on the STATE field,
    which matches whole words only.
    """

    words: tuple[str, ...]
    fields: tuple[SearchField, ...]
    fuzzy: bool = False
    exact_only: bool = False


def search_document(customer: Customer) -> SearchDocument:
    """What a search index needs of a customer."""
    return SearchDocument(
        id=customer.id,
        location_id=customer.location_id,
        name=customer.company_name,
        city=customer.city,
        state=customer.state,
        number=customer.customer_number,
    )


@attrs.frozen(kw_only=True)
class RankedMatch:
    """A customer id found by an index, with its score and the field that matched."""

    customer_id: str
    score: float
    field: SearchField


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise ValidationError({"query": "the query must be a string"})
    if len(text) > MAX_QUERY_LENGTH:
        raise ValidationError({"query": f"the query is longer than {MAX_QUERY_LENGTH} characters"})
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise ValidationError({"query": "the query contains a NUL byte or a lone surrogate"})
    return text


def parse_query(
    text: str, field: SearchField = SearchField.ALL, *, fuzzy: bool = False
) -> SearchQuery:
    """Validate and parse a query (rules S2, S3).

    Raises:
        QueryTooShort: no word has 3 or more characters (a 2-letter state code on the STATE
            field is the exception).
        ValidationError: the query is too long or holds characters no text field can hold.
    """
    words = query_words(_check_text(text))
    fields = ALL_FIELDS if field is SearchField.ALL else (field,)
    if any(len(word) >= 3 for word in words):
        return SearchQuery(words=words, fields=fields, fuzzy=fuzzy)
    if field is SearchField.STATE and len(words) == 1 and len(words[0]) == 2 and words[0].isalpha():
        return SearchQuery(words=words, fields=fields, fuzzy=False, exact_only=True)
    raise QueryTooShort


def check_limit(limit: int) -> int:
    """Validate a page size: 1 to ``MAX_LIMIT``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": f"limit must be a whole number from 1 to {MAX_LIMIT}"})
    return limit
