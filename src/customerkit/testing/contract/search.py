"""Search through the book: same hits in the same order on every backend (rules S1-S5)."""

from __future__ import annotations

import pytest

import customerkit as ck
from customerkit.testing.contract._actors import MANAGER, OTHER_ADMIN, STAFF
from customerkit.testing.contract._base import ContractBase, customer


class SearchContract(ContractBase):
    """Rules S1-S5 through the book: same hits in the same order on every backend."""

    @pytest.fixture
    def loaded(self, book: ck.Book) -> ck.Book:
        rows = [
            ("John Deere", "D-1", "Moline", "IL"),
            ("Johnson Tires - Denver", "C-1001", "Denver", "CO"),
            ("Johnson Tires", "C-1002", "Aurora", "CO"),
            ("Big John's Hauling", "C-2000", "Boulder", "CO"),
            ("Smith-Jones Farms", "C-3000", "Salina", "KS"),
            ("O'Brien Equipment", "C-4000", "Denver", "CO"),
            ("ÉCOLE Auto", "C-5000", "Lyon", "CO"),
            ("50%_off Tires", "C-6000", "Denver", "CO"),
        ]
        for name, number, city, state in rows:
            customer(book, name, number, city=city, state=state)
        customer(book, "Johnson Far Away", "C-1001", actor=OTHER_ADMIN)
        return book

    @staticmethod
    def names(book: ck.Book, query: str, **kw: object) -> list[str]:
        hits = book.customers.search(query, actor=STAFF, **kw)  # type: ignore[arg-type]
        return [hit.customer.company_name for hit in hits]

    def test_s4_prefix_examples_from_the_help_center(self, loaded: ck.Book) -> None:
        names = self.names(loaded, "john")
        assert names[:1] == ["John Deere"]
        assert {"John Deere", "Johnson Tires", "Johnson Tires - Denver"} <= set(names)
        assert self.names(loaded, "john den") == ["Johnson Tires - Denver"]

    def test_s1_scoped_to_location_and_field(self, loaded: ck.Book) -> None:
        assert "Johnson Far Away" not in self.names(loaded, "johnson")
        assert self.names(loaded, "denver", field=ck.SearchField.NAME) == ["Johnson Tires - Denver"]
        by_city = self.names(loaded, "denver", field=ck.SearchField.CITY)
        assert set(by_city) == {"Johnson Tires - Denver", "O'Brien Equipment", "50%_off Tires"}
        assert self.names(loaded, "1002", field=ck.SearchField.NUMBER) == ["Johnson Tires"]

    def test_s2_folding_apostrophes_and_hyphens(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "obrien") == ["O'Brien Equipment"]
        assert self.names(loaded, "ecole") == ["ÉCOLE Auto"]
        for query in ("smith", "jones", "smithjones", "smith-jones"):
            assert self.names(loaded, query) == ["Smith-Jones Farms"]

    def test_s2_letters_without_ascii_decomposition_are_transliterated(self, book: ck.Book) -> None:
        customer(book, "Søren Hauling", "C-1", city="Łódź")
        customer(book, "Иван Петров Trucks", "C-2", city="Straße")
        customer(book, "Ærø Marine", "C-3")
        customer(book, "Soren Lodz Plain", "C-4")
        for query, field, expected in (
            ("soren", ck.SearchField.NAME, {"Søren Hauling", "Soren Lodz Plain"}),
            ("søren", ck.SearchField.NAME, {"Søren Hauling", "Soren Lodz Plain"}),
            ("lodz", ck.SearchField.CITY, {"Søren Hauling"}),
            ("łódź", ck.SearchField.ALL, {"Søren Hauling", "Soren Lodz Plain"}),
            ("ivan petrov", ck.SearchField.NAME, {"Иван Петров Trucks"}),
            ("петров", ck.SearchField.NAME, {"Иван Петров Trucks"}),
            ("strasse", ck.SearchField.CITY, {"Иван Петров Trucks"}),
            ("aero", ck.SearchField.NAME, {"Ærø Marine"}),
        ):
            hits = book.customers.search(query, actor=STAFF, field=field)
            assert {h.customer.company_name for h in hits} == expected, query

    def test_s3_short_queries(self, loaded: ck.Book) -> None:
        with pytest.raises(ck.QueryTooShort):
            loaded.customers.search("jo", actor=STAFF)
        with pytest.raises(ck.QueryTooShort):
            loaded.customers.search("", actor=STAFF)
        assert len(self.names(loaded, "co", field=ck.SearchField.STATE)) == 6
        assert self.names(loaded, "john t d") == ["Johnson Tires - Denver"]

    def test_s4_infix_ranked_below_prefix(self, loaded: ck.Book) -> None:
        names = self.names(loaded, "ohn")
        assert set(names) >= {"John Deere", "Johnson Tires", "Big John's Hauling"}

    def test_s5_ranking_is_deterministic(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "tires") == [
            "50%_off Tires",  # as long as "Johnson Tires": then by folded name
            "Johnson Tires",
            "Johnson Tires - Denver",
        ]

    def test_s4_fuzzy_finds_typos_ranked_last(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "jonson") == []
        assert set(self.names(loaded, "jonson", fuzzy=True)) >= {"Johnson Tires"}

    @pytest.mark.parametrize(
        "query", ["%%%", "___", "' OR '1'='1", "'; DROP TABLE customers;--", "a%b", "tires%"]
    )
    def test_hostile_queries_are_literal(self, loaded: ck.Book, query: str) -> None:
        try:
            names = self.names(loaded, query)
        except ck.QueryTooShort:
            names = []  # no word of 3 characters: refused, never a wildcard
        expected = ["50%_off Tires", "Johnson Tires", "Johnson Tires - Denver"]
        assert names == (expected if "tires" in query else [])
        assert len(self.names(loaded, "tires")) == 3

    def test_percent_matches_literally(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "50%_off") == ["50%_off Tires"]

    @pytest.mark.parametrize("query", ["\x00abc", "a" * 100_000, "\ud800abc"])
    def test_bad_queries_raise_validation_error(self, loaded: ck.Book, query: str) -> None:
        with pytest.raises(ck.ValidationError):
            loaded.customers.search(query, actor=STAFF)

    @pytest.mark.parametrize("limit", [0, -1, 501, 10**9])
    def test_limit_bounds(self, loaded: ck.Book, limit: int) -> None:
        with pytest.raises(ck.ValidationError):
            loaded.customers.search("tires", actor=STAFF, limit=limit)

    def test_search_follows_updates_and_deletes(self, loaded: ck.Book) -> None:
        [hit] = loaded.customers.search("deere", actor=STAFF)
        loaded.customers.update(hit.customer.id, {"company_name": "Deer Valley Feed"}, actor=STAFF)
        assert self.names(loaded, "deere") == []
        assert self.names(loaded, "valley") == ["Deer Valley Feed"]
        loaded.customers.delete(hit.customer.id, actor=MANAGER)
        assert self.names(loaded, "valley") == []
