"""Export: every customer once, from one snapshot, with formulas neutralised (rule C8)."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest

import customerkit as ck
from customerkit.testing.contract._actors import ADMIN, OTHER_ADMIN, STAFF
from customerkit.testing.contract._base import ContractBase, customer


class ExportContract(ContractBase):
    """Rule C8: streaming export, formula neutralisation."""

    def test_c8_csv_export_neutralises_formulas_and_round_trips(self, book: ck.Book) -> None:
        c = customer(
            book,
            '=HYPERLINK("http://x","click")',
            "C-1",
            city="-Denver",
            address_line1='He said "hi", twice',
        )
        book.contacts.add(
            c.id,
            ck.NewContact(first_name="@Ann", last_name="Lee", email="ann@example.com"),
            actor=STAFF,
        )
        customer(book, "Plain Co", "C-2", username="plain", password="secret password")
        out = io.StringIO()
        progress: list[tuple[int, int | None]] = []
        assert (
            book.customers.export(out, actor=STAFF, progress=lambda d, t: progress.append((d, t)))
            == 2
        )
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        first = next(r for r in rows if r["id"] == c.id)
        assert first["company_name"] == '\'=HYPERLINK("http://x","click")'
        assert first["city"] == "'-Denver"
        assert first["address_line1"] == 'He said "hi", twice'
        assert first["contact_names"] == "'@Ann Lee"
        assert first["contact_emails"] == "ann@example.com"
        assert "password" not in out.getvalue().lower().replace("password_hash", "")
        assert "$argon2" not in out.getvalue()
        assert progress[-1] == (2, 2)

    def test_c8_jsonl_export_selected_ids(self, book: ck.Book) -> None:
        a = customer(book, "A Co", "C-1")
        customer(book, "B Co", "C-2")
        out = io.StringIO()
        assert book.customers.export(out, actor=STAFF, format="jsonl", ids=[a.id]) == 1
        [row] = [json.loads(line) for line in out.getvalue().splitlines()]
        assert row["company_name"] == "A Co"

    def test_c8_export_reads_one_snapshot_while_others_write(self, book: ck.Book) -> None:
        """T17: rows exported are the rows when the export began, though others write meanwhile.

        More than one page of rows, so later pages are read after the change.
        """
        drafts = [
            ck.NewCustomer(company_name=f"Snapshot {i}", customer_number=f"S-{i}")
            for i in range(1500)
        ]
        before = {c.id for c in book.customers.create_many(drafts, actor=ADMIN)}
        last = max(before)  # exported last: a change to it comes before its page is read
        latecomer = ck.NewCustomer(company_name="Latecomer", customer_number="L-1")
        changed: list[ck.Customer] = []

        def change() -> None:
            book.customers.delete(last, actor=ADMIN)
            changed.append(book.customers.create(latecomer, actor=ADMIN))

        writer = threading.Thread(target=change)

        class ChangingWhileWritten(io.StringIO):
            def write(self, text: str) -> int:
                if writer.ident is None and self.tell() > 0:
                    writer.start()  # memory: waits for the export's lock; SQL: goes through
                    writer.join(timeout=0.5)
                return super().write(text)

        out = ChangingWhileWritten()
        book.customers.export(out, actor=STAFF, format="jsonl")
        writer.join()
        exported = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
        assert len(exported) == len(set(exported))
        assert set(exported) == before
        assert changed  # the change happened, after or during the export
        with pytest.raises(ck.NotFound):
            book.customers.get(last, actor=STAFF)

    def test_c8_export_other_location_ids_are_not_exported(self, book: ck.Book) -> None:
        far = customer(book, "Far Co", "C-1", actor=OTHER_ADMIN)
        out = io.StringIO()
        assert book.customers.export(out, actor=STAFF, format="jsonl", ids=[far.id]) == 0
