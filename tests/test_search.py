"""Rules S1-S5: search semantics (the oracle) and the in-memory index that must match it exactly."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customerkit import text as text_module
from customerkit.errors import QueryTooShort
from customerkit.model import SearchField
from customerkit.search.index import MemorySearchIndex, _buckets, _location, _vocabulary
from customerkit.search.query import (
    ALL_FIELDS,
    RankedMatch,
    SearchDocument,
    SearchQuery,
    parse_query,
)
from customerkit.search.rules import is_fuzzy_match, oracle_search
from customerkit.text import fold, query_words, words, words_of_texts

LOCATION = "loc-1"
Search = Callable[[list[SearchDocument], SearchQuery, int], list[RankedMatch]]


def search_oracle(
    documents: list[SearchDocument], query: SearchQuery, limit: int
) -> list[RankedMatch]:
    return oracle_search(documents, LOCATION, query, limit=limit)


def search_index(
    documents: list[SearchDocument], query: SearchQuery, limit: int
) -> list[RankedMatch]:
    index = MemorySearchIndex()
    index.bulk_load(documents)
    return index.search(LOCATION, query, limit=limit)


def search_index_upserts(
    documents: list[SearchDocument], query: SearchQuery, limit: int
) -> list[RankedMatch]:
    index = MemorySearchIndex()
    for document in documents:
        index.upsert(document)
    return index.search(LOCATION, query, limit=limit)


@pytest.fixture(
    params=[search_oracle, search_index, search_index_upserts],
    ids=["oracle", "index", "index-upserts"],
)
def search(request: pytest.FixtureRequest) -> Search:
    """Every implementation gives the spec examples' answers (rule S5: same hits, same order)."""
    return request.param  # type: ignore[no-any-return]


def doc(
    id_: str,
    name: str,
    *,
    city: str = "",
    state: str = "",
    number: str = "",
    location: str = LOCATION,
) -> SearchDocument:
    return SearchDocument(
        id=id_, location_id=location, name=name, city=city, state=state, number=number
    )


def ids(found: Iterable[RankedMatch]) -> list[str]:
    return [hit.customer_id for hit in found]


def run(
    search: Search,
    documents: list[SearchDocument],
    text: str,
    field: SearchField = SearchField.ALL,
    *,
    fuzzy: bool = False,
    limit: int = 20,
) -> list[RankedMatch]:
    return search(documents, parse_query(text, field, fuzzy=fuzzy), limit)


# --- Spec examples ---------------------------------------------------------------------------


def test_s4_prefix_of_any_word(search: Search) -> None:
    """Rule S4: "john" finds "John Deere" and "Johnson Tires", not "Bojo"."""
    documents = [doc("a", "John Deere"), doc("b", "Johnson Tires"), doc("c", "Bojo Motors")]
    assert ids(run(search, documents, "john")) == ["a", "b"]


def test_s4_every_query_word_must_match(search: Search) -> None:
    """Rule S4: "john den" finds "Johnson Tires - Denver" only."""
    documents = [
        doc("a", "Johnson Tires - Denver"),
        doc("b", "Johnson Tires - Dallas"),
        doc("c", "Denver Auto"),
    ]
    assert ids(run(search, documents, "john den")) == ["a"]


def test_s4_words_may_match_in_different_fields(search: Search) -> None:
    """Rule S4 on ALL fields: "john den" also finds a Johnson whose city is Denver."""
    documents = [doc("a", "Johnson Tires", city="Denver"), doc("b", "Johnson Tires", city="Reno")]
    assert ids(run(search, documents, "john den")) == ["a"]
    assert run(search, documents, "john den", SearchField.NAME) == []


def test_s5_infix_ranks_below_prefix(search: Search) -> None:
    """Rules S4/S5: "son" inside "Johnson" matches, after the shorter-named prefix hit "Sonic"."""
    documents = [doc("a", "Johnson Tires"), doc("b", "Sonic Motors Incorporated")]
    found = run(search, documents, "son")
    assert ids(found) == ["b", "a"]
    assert found[0].score > found[1].score


def test_s4_short_query_words_never_match_inside_words(search: Search) -> None:
    """Rule S4: infix needs 3+ characters; a 2-letter word filters by prefix only."""
    documents = [doc("a", "Johnson Tires"), doc("b", "Johnson Onyx Tires")]
    assert ids(run(search, documents, "johnson on")) == ["b"]


def test_s4_infix_is_a_contiguous_run(search: Search) -> None:
    """Rule S4: "bcde" is not inside "Xbcdcde", which holds "bcd" and "cde" apart."""
    documents = [doc("a", "Xbcdcde Co"), doc("b", "Xbcdef Co")]
    assert ids(run(search, documents, "bcde")) == ["b"]


def test_s4_fuzzy_allows_two_typos_from_eight_characters(search: Search) -> None:
    """Rule S4: fuzzy matching allows 1 typo below 8 characters, 2 from 8 on."""
    documents = [doc("a", "Johnson Tires")]
    assert ids(run(search, documents, "jonhsonn", fuzzy=True)) == ["a"]  # 2 typos, 8 chars
    assert ids(run(search, documents, "jonhsn", fuzzy=True)) == []  # 2 typos, 6 chars
    assert ids(run(search, documents, "jonhson", fuzzy=True)) == ["a"]  # a transposition
    assert ids(run(search, documents, "johnsen", fuzzy=True)) == ["a"]  # a substitution


def test_s5_exact_ranks_above_prefix(search: Search) -> None:
    """Rule S5: an exact word beats a prefix even when the prefix hit has a shorter name."""
    documents = [doc("a", "Johnson"), doc("b", "John Deere Equipment Company")]
    found = run(search, documents, "john")
    assert ids(found) == ["b", "a"]
    assert [hit.score for hit in found] == [1.0, 0.75]


def test_s5_name_ranks_above_other_fields(search: Search) -> None:
    """Rule S5: at equal strength a NAME hit beats a CITY hit, which reports its field."""
    documents = [doc("a", "Acme", city="Denver"), doc("b", "Denver Tire Service Center")]
    found = run(search, documents, "denver")
    assert ids(found) == ["b", "a"]
    assert [hit.field for hit in found] == [SearchField.NAME, SearchField.CITY]
    assert [hit.score for hit in found] == [1.0, 0.9]


def test_s5_shorter_name_then_name_then_id(search: Search) -> None:
    """Rule S5: ties break by shorter folded name, then folded name, then id."""
    documents = [
        doc("z", "Johnson Tires"),
        doc("y", "Ace Tires"),
        doc("x", "Bee Tires"),
        doc("w", "ACE TIRES"),
    ]
    assert ids(run(search, documents, "tires")) == ["w", "y", "x", "z"]


def test_s5_weakest_word_decides(search: Search) -> None:
    """Rule S5: a hit ranks by its weakest query word."""
    documents = [doc("a", "Smith Tires"), doc("b", "Smith Tire")]
    # "smith tire": a is exact + prefix (PREFIX), b is exact + exact (EXACT).
    assert ids(run(search, documents, "smith tire")) == ["b", "a"]


def test_s2_apostrophes_join(search: Search) -> None:
    """Rule S2: "O'Brien" is found by "obrien" and by "o'brien"."""
    documents = [doc("a", "O'Brien Hauling"), doc("b", "Brien Hauling")]
    assert ids(run(search, documents, "obrien")) == ["a"]
    assert ids(run(search, documents, "o'brien")) == ["a"]


@pytest.mark.parametrize("text", ["smith", "jones", "smithjones", "smith-jones"])
def test_s2_hyphenated_parts_and_joined(search: Search, text: str) -> None:
    """Rule S2: "Smith-Jones" is found by smith, jones and smithjones."""
    documents = [doc("a", "Smith-Jones Farms"), doc("b", "Farms Unlimited")]
    assert ids(run(search, documents, text)) == ["a"]


def test_s2_accents_and_case_folded(search: Search) -> None:
    """Rule S2: "école" finds "ÉCOLE" and "Ecole"."""
    documents = [doc("a", "ÉCOLE DE CONDUITE"), doc("b", "Ecole Auto"), doc("c", "Collège")]
    assert sorted(ids(run(search, documents, "école"))) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("tir.s", ["b"]), ("tire[s]", ["b"]), ("tires|supply", ["b"]), ("(tires)", ["a", "b"])],
)
def test_s4_regex_metacharacters_are_literal(
    search: Search, text: str, expected: list[str]
) -> None:
    """Rule S4: regex metacharacters only separate words ("tir.s" is "tir" and "s"): "Tires Plus"
    has no word starting with "s", so only "Tiresome Supply" is found."""
    documents = [doc("a", "Tires Plus"), doc("b", "Tiresome Supply")]
    assert ids(run(search, documents, text)) == expected


@pytest.mark.parametrize("text", ["%", "_", "%%%", "_%_", "' OR '1'='1", "a%b", ".*"])
def test_s3_wildcards_alone_are_too_short(text: str) -> None:
    """Rules S3/S4: SQL wildcards are not words: they never turn into "match everything"."""
    with pytest.raises(QueryTooShort):
        parse_query(text)


def test_s4_sql_fragments_matched_literally(search: Search) -> None:
    """Rule S4: a query that looks like SQL only finds the words it contains."""
    documents = [
        doc("a", "Acme Tires"),
        doc("b", "Drop Table Customers Inc"),
        doc("c", "100% Tires_Co"),
    ]
    assert ids(run(search, documents, "'; DROP TABLE customers;--")) == ["b"]
    assert ids(run(search, documents, "tires%")) == ["a", "c"]
    assert ids(run(search, documents, "100%_")) == ["c"]


def test_s3_two_letter_state_code_on_state_field(search: Search) -> None:
    """Rule S3: a 2-letter exact state code works on the STATE field (whole words only)."""
    documents = [
        doc("a", "Acme", state="CO"),
        doc("b", "Bolt", state="Colorado"),
        doc("c", "Co Op", state="TX"),
    ]
    found = run(search, documents, "co", SearchField.STATE)
    assert ids(found) == ["a"]
    assert found[0].field is SearchField.STATE


def test_s3_query_too_short() -> None:
    """Rule S3: "jo" is too short; a longer word lets short words filter."""
    with pytest.raises(QueryTooShort):
        parse_query("jo")
    with pytest.raises(QueryTooShort):
        parse_query("co", SearchField.NAME)
    assert parse_query("john d").words == ("john", "d")


def test_s4_fuzzy_typos_rank_lowest(search: Search) -> None:
    """Rules S4/S5: with fuzzy, "jonson" finds "Johnson" after every stronger hit; not without."""
    documents = [doc("a", "Johnson Tires"), doc("b", "Jonsonville Auto Body Repair Shop")]
    found = run(search, documents, "jonson", fuzzy=True)
    assert ids(found) == ["b", "a"]
    assert found[1].score == 0.25
    assert ids(run(search, documents, "jonson")) == ["b"]


def test_s1_scoped_to_location(search: Search) -> None:
    """Rule S1: only the searched location's customers are found."""
    documents = [doc("a", "Johnson"), doc("b", "Johnson", location="loc-2")]
    assert ids(run(search, documents, "johnson")) == ["a"]


def test_s1_fields_searched_separately(search: Search) -> None:
    """Rule S1: a field search looks at that field only and reports it."""
    documents = [
        doc("a", "Denver Tires", city="Austin"),
        doc("b", "Acme", city="Denver"),
        doc("c", "Acme", number="C-1042"),
    ]
    assert ids(run(search, documents, "denver", SearchField.CITY)) == ["b"]
    found = run(search, documents, "C-104", SearchField.NUMBER)
    assert ids(found) == ["c"]
    assert found[0].field is SearchField.NUMBER
    assert ids(run(search, documents, "1042")) == ["c"]


def test_s5_field_reported_as_all_when_words_split(search: Search) -> None:
    """Rule S5: a hit whose words match in different non-NAME fields reports ALL."""
    documents = [doc("a", "Acme", city="Denver", number="C-77123")]
    found = run(search, documents, "denver 77123")
    assert [hit.field for hit in found] == [SearchField.ALL]


def test_limit_cuts_the_ranked_list(search: Search) -> None:
    """Rule S5: the limit keeps the best hits."""
    documents = [doc(f"c{i}", f"Tires {'x' * i}") for i in range(10)]
    assert ids(run(search, documents, "tires", limit=3)) == ["c0", "c1", "c2"]


# --- The index's own behaviour ---------------------------------------------------------------


def test_index_upsert_replaces_and_remove_forgets() -> None:
    """Rule S1: updates are visible at once; removed and replaced records never appear."""
    index = MemorySearchIndex()
    index.bulk_load([doc("a", "Johnson Tires"), doc("b", "Smith Tires")])
    index.upsert(doc("a", "Jones Tires"))
    index.remove("b")
    index.remove("never-there")
    query = parse_query("tires")
    assert ids(index.search(LOCATION, query, limit=20)) == ["a"]
    assert index.search(LOCATION, parse_query("johnson"), limit=20) == []
    assert len(index) == 1


def test_index_moving_a_document_to_another_location() -> None:
    """Rule S1: a document upserted with a new location leaves the old one."""
    index = MemorySearchIndex()
    index.bulk_load([doc("a", "Johnson Tires")])
    index.upsert(doc("a", "Johnson Tires", location="loc-2"))
    query = parse_query("johnson")
    assert index.search(LOCATION, query, limit=5) == []
    assert ids(index.search("loc-2", query, limit=5)) == ["a"]
    index.bulk_load([doc("a", "Johnson Tires")])
    assert index.search("loc-2", query, limit=5) == []
    assert len(index) == 1


def test_index_unknown_location_and_empty_index() -> None:
    index = MemorySearchIndex()
    assert index.search("nowhere", parse_query("john"), limit=5) == []
    assert len(index) == 0


def test_no_hits_for_a_limit_below_one() -> None:
    documents = [doc("a", "Johnson"), doc("b", "Johnston")]
    query = parse_query("john")
    assert oracle_search(documents, LOCATION, query, limit=-1) == []
    assert search_index(documents, query, -1) == []


def test_index_documents_without_words_survive_merges() -> None:
    """Segments of word-less documents merge with others without inventing words."""
    index = MemorySearchIndex()
    index.bulk_load([doc("a", "")])
    index.bulk_load([doc("b", "Johnson")])
    index.rebuild()
    query = SearchQuery(words=("jonson",), fields=ALL_FIELDS, fuzzy=True)
    assert ids(index.search(LOCATION, query, limit=5)) == ["b"]


def test_index_bulk_load_last_duplicate_wins() -> None:
    index = MemorySearchIndex()
    index.bulk_load([doc("a", "Smith"), doc("a", "Jones")])
    assert ids(index.search(LOCATION, parse_query("jones"), limit=5)) == ["a"]
    assert index.search(LOCATION, parse_query("smith"), limit=5) == []


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_s2_fast_tokeniser_agrees_with_text_words(text: str) -> None:
    """Rule S2: the ASCII tokeniser gives exactly what the general path of ``text.words`` gives."""
    assert words(text) == text_module._general_words(text)


@given(st.text(alphabet="aZ09-'` _%.\t\u00e9", max_size=30))
def test_s2_fast_tokeniser_agrees_on_ascii_edge_cases(text: str) -> None:
    assert words(text) == text_module._general_words(text)


@given(
    st.lists(st.text("abc1", min_size=1, max_size=12), min_size=1, max_size=60, unique=True),
    st.text("abc1", min_size=4, max_size=12),
)
def test_s4_typo_search_finds_exactly_the_oracles_typos(vocabulary: list[str], text: str) -> None:
    """Rule S4: the index's vocabulary walk finds the words the oracle calls typos, and no others
    (1 edit below 8 characters, 2 from 8 on, on the whole word or its start)."""
    found = _vocabulary.Vocabulary(sorted(vocabulary)).fuzzy_ids(text)
    expected = [at for at, word in enumerate(sorted(vocabulary)) if is_fuzzy_match(text, word)]
    assert sorted(found.tolist()) == expected


@given(st.lists(st.text(alphabet="aZ09-'` _\n\u00e9", max_size=12), max_size=8))
def test_s2_batch_tokeniser_agrees_with_text_words(texts: list[str]) -> None:
    """Rule S2: tokenising many texts at once gives each text's ``text.words`` (repeats aside)."""
    found, counts = words_of_texts(texts)
    assert len(counts) == len(texts)
    at = 0
    for text, count in zip(texts, counts, strict=True):
        assert tuple(dict.fromkeys(found[at : at + count])) == words(text)
        at += count
    assert at == len(found)


# --- Differential properties: index == oracle ------------------------------------------------

# Few letters so words collide, share prefixes and sit inside each other; hyphens, apostrophes,
# accents, case and digits exercise rule S2.
TEXTS = st.text(alphabet="abcAB1-' \u00e9\u00c9", max_size=10)
QUERY_TEXTS = st.text(alphabet="abcB1-' \u00e9", min_size=1, max_size=8)
DOCUMENT_IDS = st.sampled_from([f"c{i}" for i in range(40)])
FIELD_CHOICES = st.sampled_from(
    [ALL_FIELDS, *((field,) for field in ALL_FIELDS), (SearchField.CITY, SearchField.NUMBER)]
)


@st.composite
def documents(draw: st.DrawFn) -> SearchDocument:
    return SearchDocument(
        id=draw(DOCUMENT_IDS),
        location_id=draw(st.sampled_from([LOCATION, "loc-2"])),
        name=draw(TEXTS),
        city=draw(TEXTS),
        state=draw(st.sampled_from(["", "CO", "co", "Colorado", "TX"])),
        number=draw(st.sampled_from(["", "C-1001", "c-1002", "1001", "C1a-b"]) | TEXTS),
    )


@st.composite
def queries(draw: st.DrawFn) -> SearchQuery:
    """Any query the index must answer, including ones parse_query would refuse (rule S3)."""
    found = query_words(draw(QUERY_TEXTS))
    exact_only = draw(st.booleans()) and draw(st.booleans())
    return SearchQuery(
        words=found,
        fields=draw(FIELD_CHOICES),
        fuzzy=draw(st.booleans()),
        exact_only=exact_only,
    )


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), documents()),
        st.tuples(st.just("remove"), DOCUMENT_IDS),
        st.tuples(st.just("rebuild"), st.none()),
        st.tuples(st.just("bulk"), st.lists(documents(), max_size=30)),
    ),
    max_size=25,
)


@contextmanager
def tiny_constants(tiny: bool) -> Iterator[None]:
    """Shrink the index's buffer, chunk and block sizes so a few documents use every path:
    several segments and merges, chunked candidate scans, vocabulary blocks."""
    if not tiny:
        yield
        return
    with (
        mock.patch.multiple(_location, _PENDING_LIMIT=2, _MERGE_RATIO=2),
        mock.patch.multiple(_buckets, _FIRST_CHUNK=0, _SPARSE=1000, _FILTER_RATIO=1000),
        mock.patch.object(_vocabulary, "_SAMPLE_STEP", 2),
    ):
        yield


def apply(
    operations: list[tuple[str, object]], index: MemorySearchIndex
) -> dict[str, SearchDocument]:
    """Run operations on the index and on a plain dict model of the live documents."""
    model: dict[str, SearchDocument] = {}
    for kind, argument in operations:
        if kind == "upsert":
            assert isinstance(argument, SearchDocument)
            index.upsert(argument)
            model[argument.id] = argument
        elif kind == "remove":
            assert isinstance(argument, str)
            index.remove(argument)
            model.pop(argument, None)
        elif kind == "bulk":
            assert isinstance(argument, list)
            index.bulk_load(argument)
            model.update((document.id, document) for document in argument)
        else:
            index.rebuild()
    return model


@pytest.mark.parametrize("tiny", [False, True], ids=["default", "tiny-constants"])
@given(operations=OPERATIONS, query_list=st.lists(queries(), min_size=1, max_size=4))
@settings(max_examples=150)
def test_s5_index_equals_oracle_after_any_changes(
    tiny: bool, operations: list[tuple[str, object]], query_list: list[SearchQuery]
) -> None:
    """Rule S5: after any upserts, removals, bulk loads and rebuilds, the index returns exactly
    the oracle's hits in the oracle's order, for every location, field set and limit."""
    with tiny_constants(tiny):
        index = MemorySearchIndex()
        model = apply(operations, index)
        assert len(index) == len(model)
        for query in query_list:
            for location in (LOCATION, "loc-2"):
                for limit in (1, 3, 50):
                    expected = oracle_search(model.values(), location, query, limit=limit)
                    assert index.search(location, query, limit=limit) == expected
        before = [index.search(LOCATION, query, limit=50) for query in query_list]
        index.rebuild()
        assert [index.search(LOCATION, query, limit=50) for query in query_list] == before


@given(
    document_list=st.lists(documents(), max_size=30, unique_by=lambda d: d.id),
    query=queries().filter(lambda q: not q.fuzzy and not q.exact_only and bool(q.words)),
)
def test_s4_hits_are_exactly_the_matching_records(
    document_list: list[SearchDocument], query: SearchQuery
) -> None:
    """Rule S4, checked naively: a record is a hit iff every query word starts a word of a
    searched field, or (3+ characters) sits inside one."""

    def matches(document: SearchDocument) -> bool:
        field_words = [w for field in query.fields for w in words(document.text(field))]
        return all(
            any(w.startswith(q) or (len(q) >= 3 and q in w) for w in field_words)
            for q in query.words
        )

    index = MemorySearchIndex()
    index.bulk_load(document_list)
    found = index.search(LOCATION, query, limit=500)
    expected = {d.id for d in document_list if d.location_id == LOCATION and matches(d)}
    assert {hit.customer_id for hit in found} == expected
    assert len(found) == len(expected)


@given(
    document_list=st.lists(documents(), max_size=30, unique_by=lambda d: d.id),
    query=queries().filter(lambda q: not q.fuzzy and bool(q.words)),
)
def test_s5_order_follows_the_rank_key(
    document_list: list[SearchDocument], query: SearchQuery
) -> None:
    """Rule S5, checked from the outside: scores never rise; within a score, shorter folded
    name, then name, then id; the same query twice gives the same list."""
    index = MemorySearchIndex()
    index.bulk_load(document_list)
    found = index.search(LOCATION, query, limit=500)
    by_id = {d.id: d for d in document_list}

    def key(hit: RankedMatch) -> tuple[float, int, str, str]:
        name = fold(by_id[hit.customer_id].name)
        return (-hit.score, len(name), name, hit.customer_id)

    assert found == sorted(found, key=key)
    assert index.search(LOCATION, query, limit=500) == found


@pytest.mark.parametrize("seed", range(4))
def test_s5_index_equals_oracle_on_a_larger_book(seed: int) -> None:
    """Rule S5: hundreds of records over a two-letter alphabet ("abab" holds "ab" as prefix and
    infix; one word often sits in two fields), read in chunks of one, after every kind of
    change: still exactly the oracle's lists."""
    rng = random.Random(seed)

    def text() -> str:
        return " ".join(
            "".join(rng.choice("ab") for _ in range(rng.randint(1, 6)))
            for _ in range(rng.randint(0, 3))
        )

    def document(number: int) -> SearchDocument:
        return doc(f"c{number}", text(), city=text(), state=text(), number=text())

    with tiny_constants(True):
        index = MemorySearchIndex()
        model = {f"c{i}": document(i) for i in range(250)}
        index.bulk_load(model.values())
        for _ in range(80):
            number = rng.randrange(300)
            if rng.random() < 0.3:
                index.remove(f"c{number}")
                model.pop(f"c{number}", None)
            else:
                model[f"c{number}"] = document(number)
                index.upsert(model[f"c{number}"])
        for _ in range(40):
            query = SearchQuery(
                words=query_words(text()) or ("ab",),
                fields=rng.choice([ALL_FIELDS, (SearchField.NAME,), (SearchField.CITY,)]),
                fuzzy=rng.random() < 0.3,
            )
            expected = oracle_search(model.values(), LOCATION, query, limit=500)
            for limit in (1, 2, 5, 17, 500):
                assert index.search(LOCATION, query, limit=limit) == expected[:limit], query


def test_s5_index_equals_oracle_with_a_huge_alphabet() -> None:
    """Rule S5: the slow trigram path (used when packed trigrams would not fit) agrees too."""
    documents_ = [doc(f"c{i}", f"x{chr(0x4E00 + i)}{chr(0x4E01 + i)}yz {i}") for i in range(40)]
    query = SearchQuery(words=(f"{chr(0x4E05)}{chr(0x4E06)}y",), fields=ALL_FIELDS)
    with mock.patch.object(_vocabulary, "_PACKED_BITS", 0):
        index = MemorySearchIndex()
        index.bulk_load(documents_)
        assert index.search(LOCATION, query, limit=20) == oracle_search(
            documents_, LOCATION, query, limit=20
        )
