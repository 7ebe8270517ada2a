"""External sources: search, import, refresh and secret columns (rules D1-D4)."""

from __future__ import annotations

import io

import pytest

import customerkit as ck
from customerkit.testing.contract._actors import ADMIN, MANAGER, STAFF
from customerkit.testing.contract._base import ContractBase, customer


class SourcesContract(ContractBase):
    """Rules D1-D4."""

    @pytest.fixture
    def dms(self) -> ck.InMemorySource:
        return ck.InMemorySource(
            "procede",
            [
                ck.SourceRecord(
                    external_id="P-1",
                    data={
                        "company_name": "Johnson Tires",
                        "customer_number": "P-1",
                        "city": "Denver",
                        "state": "CO",
                    },
                ),
                ck.SourceRecord(
                    external_id="P-2", data={"company_name": "John Deere", "customer_number": "P-2"}
                ),
            ],
        )

    def test_d4_secret_columns_are_never_stored(self, book: ck.Book) -> None:
        """A source column named like a secret is dropped at import and refresh.

        It is not in ``extra``, the history, an export or a repr.
        """
        data = {"company_name": "Johnson Tires", "customer_number": "P-1", "Region": "West"}
        secrets = {"password": "hunter2-pw", "User PIN": "4711-pin", "api_token": "tok-xyz"}
        dms = ck.InMemorySource(
            "procede", [ck.SourceRecord(external_id="P-1", data={**data, **secrets})]
        )
        book.sources.register(dms)
        book.sources.enable("procede", location_id="loc-1", actor=ADMIN)
        c = book.sources.import_customer("procede", "P-1", actor=STAFF)
        assert c.extra == {"Region": "West"}
        dms.put(ck.SourceRecord(external_id="P-1", data={**data, **secrets, "Region": "East"}))
        c = book.sources.refresh_customer(c.id, actor=STAFF)
        assert c.extra == {"Region": "East"}
        out = io.StringIO()
        book.customers.export(out, actor=ADMIN, format="jsonl")
        history = book.history.for_customer(c.id, actor=ADMIN)
        for text in (
            out.getvalue(),
            repr(history),
            repr(c),
            repr(book.customers.get(c.id, actor=ADMIN)),
        ):
            assert not [value for value in secrets.values() if value in text]

    @pytest.mark.parametrize("key", ["password", "Passwd", "userPIN", "API-Token", "secret"])
    def test_d4_secret_keys_in_extra_are_refused(self, book: ck.Book, key: str) -> None:
        """``extra`` given through the API never holds a secret: ``ValidationError`` on extra."""
        with pytest.raises(ck.ValidationError, match="secret") as caught:
            customer(book, extra={key: "hunter2-pw", "Region": "West"})
        assert "hunter2-pw" not in str(caught.value)
        c = customer(book, extra={"Region": "West", "Shipping": "dock 2", "Pinecone": "y"})
        with pytest.raises(ck.ValidationError, match="secret"):
            book.customers.update(c.id, {"extra": {key: "hunter2-pw"}}, actor=ADMIN)
        assert book.customers.get(c.id, actor=ADMIN) == c

    def test_d2_only_admin_enables_and_disabled_refuses(
        self, book: ck.Book, dms: ck.InMemorySource
    ) -> None:
        book.sources.register(dms)
        with pytest.raises(ck.SourceError):
            book.sources.search("procede", "john", actor=STAFF)
        with pytest.raises(ck.PermissionDenied):
            book.sources.enable("procede", location_id="loc-1", actor=MANAGER)
        book.sources.enable("procede", location_id="loc-1", actor=ADMIN)
        assert len(book.sources.search("procede", "john", actor=STAFF)) == 2

    def test_d3_d4_import_then_read_only_then_refresh(
        self, book: ck.Book, dms: ck.InMemorySource
    ) -> None:
        book.sources.register(dms)
        book.sources.enable("procede", location_id="loc-1", actor=ADMIN)
        c = book.sources.import_customer("procede", "P-1", actor=STAFF)
        assert (c.company_name, c.source and c.source.external_id) == ("Johnson Tires", "P-1")
        hits = {
            h.record.external_id: h.customer_id
            for h in book.sources.search("procede", "john", actor=STAFF)
        }
        assert hits == {"P-1": c.id, "P-2": None}
        with pytest.raises(ck.AlreadyImported):
            book.sources.import_customer("procede", "P-1", actor=STAFF)
        with pytest.raises(ck.ReadOnlyCustomer):
            book.customers.update(c.id, {"city": "Aurora"}, actor=ADMIN)
        book.customers.update(c.id, {"phone_extension": "12"}, actor=STAFF)  # not from the source
        dms.put(
            ck.SourceRecord(
                external_id="P-1",
                data={
                    "company_name": "Johnson Tires & Wheels",
                    "customer_number": "P-1",
                    "city": "Aurora",
                    "state": "CO",
                },
            )
        )
        refreshed = book.sources.refresh_customer(c.id, actor=STAFF)
        assert (refreshed.company_name, refreshed.city) == ("Johnson Tires & Wheels", "Aurora")
        last = book.history.for_customer(c.id, actor=ADMIN)[-1]
        assert last.action == "refresh"
        assert last.changes["city"] == ("Denver", "Aurora")
        dms.drop("P-1")
        with pytest.raises(ck.SourceError):
            book.sources.refresh_customer(c.id, actor=STAFF)
        assert book.customers.get(c.id, actor=STAFF) == refreshed
        book.customers.delete(c.id, actor=MANAGER)

    def test_d1_csv_source(self, book: ck.Book, tmp_path: object) -> None:
        from pathlib import Path

        assert isinstance(tmp_path, Path)
        path = tmp_path / "export.csv"
        path.write_text(
            "\ufeffCustomer #;Company Name;City;State\r\nP-9;Miller Trucking;Salina;KS\r\n",
            encoding="utf-8",
        )
        source = ck.CsvSource("dms", path)
        book.sources.register(source)
        book.sources.enable("dms", location_id="loc-1", actor=ADMIN)
        [hit] = book.sources.search("dms", "mill", actor=STAFF)
        assert hit.record.data["company_name"] == "Miller Trucking"
        c = book.sources.import_customer("dms", "P-9", actor=STAFF)
        assert (c.customer_number, c.state) == ("P-9", "KS")
