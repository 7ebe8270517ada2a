"""Rule S2: folding and tokenising, shared by search, usernames and matching."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from customerkit import text
from customerkit.text import digits, fold, number_key, query_words, words

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def test_s2_fold_removes_accents_and_case() -> None:
    assert fold("ÉCOLE Ñandú Straße") == "ecole nandu strasse"


def test_s2_apostrophes_join_words() -> None:
    assert words("O'Brien’s Garage") == ("obriens", "garage")


def test_s2_hyphenated_words_indexed_as_parts_and_joined() -> None:
    assert words("Smith-Jones Farms") == ("smith", "jones", "smithjones", "farms")
    assert query_words("smith-jones") == ("smith", "jones")


def test_s2_spaced_dash_is_a_separator() -> None:
    assert words("Johnson Tires - Denver") == ("johnson", "tires", "denver")


def test_s2_split_at_non_alphanumerics() -> None:
    assert words("50%_off  a.b/c") == ("50", "off", "a", "b", "c")
    assert words("'; DROP TABLE x;--") == ("drop", "table", "x")


def test_digits_maps_fullwidth() -> None:
    assert digits("＋４９ 30") == "4930"


def test_c2_number_key_ignores_case_and_separators() -> None:
    assert number_key(" c-1001 ") == number_key("C 1001") == number_key("C1001") == "c1001"


@given(TEXT)
def test_s2_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(TEXT)
def test_s2_words_are_folded_alphanumeric_and_unique(text: str) -> None:
    found = words(text)
    assert len(found) == len(set(found))
    for word in found:
        assert word
        assert fold(word) == word
        assert all(ch.isalnum() or unicodedata.category(ch).startswith("M") for ch in word)


@given(TEXT)
def test_s2_query_words_are_indexed_words(text: str) -> None:
    assert set(query_words(text)) <= set(words(text))


@given(st.text(alphabet="aZ09-'` _%.\t\u00e9\u00c9", max_size=30))
def test_s2_c2_ascii_shortcuts_agree_with_the_general_paths(value: str) -> None:
    assert fold(value) == text._general_fold(value)
    assert number_key(value) == text._general_number_key(value)
