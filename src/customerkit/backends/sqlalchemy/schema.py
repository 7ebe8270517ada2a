"""The SQL schema in SQLAlchemy Core: one table per aggregate, plus the search word table.

The domain classes are never mapped; ``._rows`` turns rows into them. Canonical keys
(``username_key``, ``number_key``, ``external_key``, folded search words) are computed in Python
and stored next to the raw values, so uniqueness and search behave the same on SQLite and
PostgreSQL: the databases' own ``lower()``/``LIKE`` fold ASCII only (SQLite) or by locale (PG).

Columns that are compared by range or sorted use binary collation (``COLLATE "C"`` on
PostgreSQL; SQLite's default ``BINARY``), so the database orders them as Python does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    literal_column,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

#: The schema this release writes and reads. Bump it with every schema change (and, from the
#: first released schema on, ship an Alembic migration for it). Version 4: the ``dismissals``
#: table, and stored folded keys (search words, number keys, match keys) that transliterate
#: what accents removal leaves non-ASCII (``customerkit.text.fold``); version 3 keys would miss
#: such matches; and the search vocabulary on PostgreSQL too (with a trigram index). Version 5:
#: the word table's forward index (``ix_customer_words_customer``). Version 6: the masks of how
#: a customer's words start on each of its word rows (``name_starts``, ``starts``).
SCHEMA_VERSION = 6

#: Word-table field codes, in the order of ``customerkit.search.query.ALL_FIELDS``.
NAME, CITY, STATE, NUMBER = 1, 2, 3, 4


def _binary(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """A string type compared by code point on every backend."""
    return type_.with_variant(String(collation="C"), "postgresql")


Key = _binary(String())
SortedText = _binary(Text())


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC ``datetime`` on every backend.

    PostgreSQL stores ``timestamptz`` and returns it in the session's zone; SQLite has no
    zones, so the value is stored as naive UTC text. Either way it is read back aware, in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            msg = "customerkit stores timezone-aware datetimes only"
            raise ValueError(msg)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: Any) -> dt.datetime:
    """A stored ``UtcDateTime`` (not null) as read: aware, in UTC.

    Takes what a driver returns (SQLite's naive UTC text or ``datetime``, PostgreSQL's
    ``timestamptz`` in the session's zone) and what SQLAlchemy returns (aware UTC already).
    """
    if type(value) is str:  # raw SQLite text, e.g. from a hand-written query
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is dt.UTC:
        return value  # type: ignore[no-any-return]
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Key, primary_key=True),
    Column("location_id", Key, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("company_name", Text, nullable=False),
    Column("customer_number", Text, nullable=False),
    # number_key(customer_number): C2 compares numbers with case and separators ignored.
    Column("number_key", Key, nullable=False),
    Column("address_line1", Text, nullable=False),
    Column("address_line2", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("postal_code", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("phone", Text, nullable=False),
    Column("phone_extension", Text, nullable=False),
    Column("fax", Text, nullable=False),
    Column("alternate_emails", Text, nullable=False),  # JSON list
    Column("alternate_phones", Text, nullable=False),  # JSON list
    Column("company_type", Text),
    Column("category", Text),
    Column("username", Text),
    # username_key(username): U1's canonical key; tombstones keep theirs (C6).
    Column("username_key", Key, unique=True),
    Column("password_hash", Text),
    Column("assigned_staff", Text, nullable=False),  # JSON list
    Column("source_name", Key),
    Column("source_external_id", Key),
    Column("source_last_synced_at", UtcDateTime),
    Column("source_fields", Text),  # JSON list
    Column("extra", Text, nullable=False),  # JSON object
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("merged_into", Key),
)

#: ``status = 'ACTIVE'`` as a literal: SQLite (and PostgreSQL's generic plans) use a partial
#: index only when the query's condition matches the index's condition textually.
LIVE_CUSTOMER = customers.c.status == literal_column("'ACTIVE'")


def _partial(condition: str) -> dict[str, Any]:
    """An index's ``WHERE``, the same on both databases (each dialect takes its own keyword)."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


# C2: numbers are unique per location among live customers; blank numbers never clash.
Index(
    "uq_customers_live_number",
    customers.c.location_id,
    customers.c.number_key,
    unique=True,
    **_partial("status = 'ACTIVE' AND customer_number <> ''"),
)
# D4: a source record is imported once (among live customers).
Index(
    "uq_customers_live_source",
    customers.c.source_name,
    customers.c.source_external_id,
    unique=True,
    **_partial("status = 'ACTIVE' AND source_name IS NOT NULL"),
)
# Keyset pagination (iter_location), count() and created_since() over live customers.
Index(
    "ix_customers_live_location",
    customers.c.location_id,
    customers.c.id,
    **_partial("status = 'ACTIVE'"),
)
Index(
    "ix_customers_live_created",
    customers.c.location_id,
    customers.c.created_at,
    **_partial("status = 'ACTIVE'"),
)
# A merge re-points the tombstones merged into its other records (RELIABILITY d6, version 3).
Index(
    "ix_customers_merged_into",
    customers.c.merged_into,
    **_partial("merged_into IS NOT NULL"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Key, primary_key=True),
    Column("customer_id", Key, ForeignKey("customers.id"), nullable=False),
    Column("first_name", Text, nullable=False),
    Column("last_name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("phone", Text, nullable=False),
    Column("alternate_emails", Text, nullable=False),  # JSON list
    Column("alternate_phones", Text, nullable=False),  # JSON list
    Column("title", Text, nullable=False),
    Column("managed_by", String(16), nullable=False),
    Column("added_by_fleet", Boolean, nullable=False),
    Column("external_user", Boolean, nullable=False),
    # email_key(email) for live external users only (K3), else NULL: NULLs never clash.
    Column("external_key", Key),
    Column("one_time_case_id", Text),
    Column("last_communicated_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("merged_into", Key),
)
Index(
    "uq_contacts_external_user",
    contacts.c.external_key,
    unique=True,
    **_partial("external_key IS NOT NULL"),
)
Index("ix_contacts_customer", contacts.c.customer_id, contacts.c.created_at, contacts.c.id)
Index(
    "ix_contacts_merged_into",
    contacts.c.merged_into,
    **_partial("merged_into IS NOT NULL"),
)

users = Table(
    "users",
    metadata,
    Column("id", Key, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("role", Integer, nullable=False),
    Column("location_id", Key, nullable=False),
    Column("has_login", Boolean, nullable=False),
    Column("fleet_customer_id", Key),
)
Index("ix_users_location", users.c.location_id, users.c.id)
Index("ix_users_fleet", users.c.fleet_customer_id, users.c.id)

history = Table(
    "history",
    metadata,
    # Sequence numbers are allocated by the unit of work (see repositories.HistoryRepository);
    # on SQLite AUTOINCREMENT keeps numbers of deleted rows from being reused, as in memory.
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        Sequence("history_seq_seq"),
        primary_key=True,
    ),
    Column("entity", String(32), nullable=False),
    Column("entity_id", Key, nullable=False),
    # No foreign key: history outlives tombstones and is removed on its own (C6).
    Column("customer_id", Key, nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor_id", Text),
    Column("at", UtcDateTime, nullable=False),
    Column("changes", Text, nullable=False),  # tagged JSON, see _rows.dumps
    sqlite_autoincrement=True,
)
Index("ix_history_customer", history.c.customer_id, history.c.seq)

company_types = Table(
    "company_types",
    metadata,
    Column("name", SortedText, primary_key=True),
)

categories = Table(
    "categories",
    metadata,
    Column("name", SortedText, primary_key=True),
    Column("required_fields", Text, nullable=False),  # JSON list
)

settings = Table(
    "source_settings",
    metadata,
    Column("source", Key, primary_key=True),
    Column("location_id", Key, primary_key=True),
    Column("enabled", Boolean, nullable=False),
)

merges = Table(
    "merges",
    metadata,
    Column("merge_id", Key, primary_key=True),
    Column("record", Text, nullable=False),  # tagged JSON
)

#: "Not a duplicate" decisions (schema version 4): one row per dismissed pair, ``low_id``
#: sorting before ``high_id``. No foreign keys: a dismissal outlives tombstones and is removed
#: with a purged record, by id (hence the two indexes).
dismissals = Table(
    "dismissals",
    metadata,
    Column("location_id", Key, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("low_id", Key, primary_key=True),
    Column("high_id", Key, primary_key=True),
    Column("actor_id", Text),
    Column("at", UtcDateTime, nullable=False),
)
Index("ix_dismissals_low", dismissals.c.low_id)
Index("ix_dismissals_high", dismissals.c.high_id)

#: The search index: one row per (customer, field, folded word) of live customers. The primary
#: key doubles as the lookup index, in rank order: a word's rows on one field come shortest
#: name first (S5's third key), so a search reads the first rows of a word's range and stops
#: when its page is full, instead of reading, grouping and sorting every match (schema
#: version 3; version 2 keyed (location_id, field, word, customer_id)). Still unique, since the
#: name length depends on the customer, and customer_id rides along so lookups never touch the
#: table. There is deliberately no index on customer_id alone (nor a foreign key, which would
#: need one): rows are removed by their full key, recomputed from the customer's old values,
#: and every extra index would slow down bulk loads, which write ~8 rows per customer.
customer_words = Table(
    "customer_words",
    metadata,
    Column("location_id", Key, nullable=False),
    Column("field", SmallInteger, nullable=False, autoincrement=False),
    Column("word", Key, nullable=False),
    Column("customer_id", Key, nullable=False),
    # len(fold(company_name)), the third rank key (S5).
    Column("name_length", Integer, nullable=False),
    # How the customer's NAME words, and all its searchable words, start (``_word_starts``):
    # the same on every row of the customer. On PostgreSQL the key includes them, so a page
    # filters on them in an index-only scan (SQLite's rows are the key's B-tree).
    Column("name_starts", BigInteger, nullable=False),
    Column("starts", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "location_id",
        "field",
        "word",
        "name_length",
        "customer_id",
        postgresql_include=["name_starts", "starts"],
    ),
    sqlite_with_rowid=False,
)
#: The forward index: a customer's own words, field by field. A search of several words checks
#: a short common word ("brow c": thousands of words start with "c") on each candidate with
#: one seek here, where the key above would read the word's rows of every customer.
Index(
    "ix_customer_words_customer",
    customer_words.c.customer_id,
    customer_words.c.field,
    customer_words.c.word,
)

#: Blocking keys for matching one new record against a location (M6): one row per (record,
#: blocking rule that gives it a key). The primary key is the lookup index: a block's members
#: in sort-key order are a B-tree range. Kept only for locations listed in ``match_ready``
#: (see _match_keys.py): a location nobody matches against costs its writes nothing.
match_keys = Table(
    "match_keys",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("location_id", Key, primary_key=True),
    Column("block", Key, primary_key=True),
    Column("sort_key", Key, primary_key=True),
    Column("record_id", Key, primary_key=True),
    sqlite_with_rowid=False,
)
# A changed record's keys are deleted by its id (its old values may be gone).
Index("ix_match_keys_record", match_keys.c.record_id)
#: The locations whose blocking keys are kept, with the phone region they were computed in.
match_ready = Table(
    "match_ready",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("location_id", Key, primary_key=True),
    Column("region", String(8), nullable=False),
)

#: Infix and fuzzy candidates: the distinct words ever indexed, each once, with a trigram index
#: over them (an FTS5 table on SQLite, below; pg_trgm on PostgreSQL). A search turns a word
#: part into the list of words containing it here, then reads each word's rows of
#: ``customer_words`` in rank order (schema version 4; PostgreSQL had a trigram index over
#: every row of the word table before, which returns rows in no useful order and cost a bulk
#: load most of its time). Words are never removed: a stale word merely finds no rows.
search_vocab = Table(
    "search_vocab",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("word", SortedText, nullable=False, unique=True),
)
Index(
    "ix_search_vocab_trgm",
    search_vocab.c.word,
    postgresql_using="gin",
    postgresql_ops={"word": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")
#: Contentless: the trigram index only, its rowid is ``search_vocab.id``. Rows are added in
#: bulk after each batch of new words (see index.WordWriter), not by a per-row trigger.
SQLITE_FTS_DDL = (
    "CREATE VIRTUAL TABLE search_vocab_fts USING fts5("
    "word, content='', tokenize='trigram case_sensitive 1')",
)

# U1: a username, once set, never changes; the database refuses it too, so a raw UPDATE (or a
# bug) cannot hand one customer's login to another. Deleting the row stays possible.
_USERNAME_CHANGED = (
    "OLD.username_key IS NOT NULL AND "
    "(NEW.username_key IS DISTINCT FROM OLD.username_key "
    "OR NEW.username IS DISTINCT FROM OLD.username)"
)
#: Statements that create the username guard, per dialect.
USERNAME_GUARD_DDL = {
    "sqlite": (
        "CREATE TRIGGER customers_username_immutable BEFORE UPDATE OF username, username_key "
        f"ON customers WHEN {_USERNAME_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} "
        "BEGIN SELECT RAISE(ABORT, 'usernames never change (U1)'); END",
    ),
    "postgresql": (
        "CREATE FUNCTION customers_username_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF {_USERNAME_CHANGED} THEN RAISE EXCEPTION 'usernames never change (U1)' "
        "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER customers_username_immutable BEFORE UPDATE OF username, username_key "
        "ON customers FOR EACH ROW EXECUTE FUNCTION customers_username_immutable()",
    ),
}

#: The tables PostgreSQL can partition by ``location_id`` with every constraint kept: their
#: primary keys already hold ``location_id`` (PostgreSQL requires a partitioned table's unique
#: keys to include the partition key). They are also the book's largest: about eight word rows
#: and a dozen blocking keys per record. ``customers`` and ``contacts`` stay whole: usernames
#: and imported source records are unique across the book (U1, D4) and contacts reference
#: their customer by id alone, none of which a partitioned table can enforce.
PARTITIONED_TABLES = ("customer_words", "match_keys")


def partitioned_metadata() -> MetaData:
    """The schema with ``PARTITIONED_TABLES`` hash-partitioned by ``location_id`` (PostgreSQL).

    Create it with ``create_all`` and then ``partition_ddl``'s partitions; every other table,
    index and constraint is the plain schema's.
    """
    copy = MetaData()
    for table in metadata.sorted_tables:
        copied = table.to_metadata(copy)
        if table.name in PARTITIONED_TABLES:
            copied.dialect_options["postgresql"]["partition_by"] = "HASH (location_id)"
    return copy


def partition_ddl(partitions: int) -> list[str]:
    """Statements creating the ``partitions`` hash partitions of each partitioned table."""
    return [
        f"CREATE TABLE {name}_p{remainder} PARTITION OF {name} "
        f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"
        for name in PARTITIONED_TABLES
        for remainder in range(partitions)
    ]
