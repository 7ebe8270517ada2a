"""The matcher's model (rule M7): estimation, blank fields, extra comparisons, explanations,
evaluation, fitting from labels, saved configurations and bad input.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import customerkit as ck
from customerkit import synth
from customerkit.matching import MatchIndex, compared_pairs, find_duplicates
from customerkit.matching.config import Parameters
from customerkit.matching.estimate import em, level_patterns

# --- estimation --------------------------------------------------------------------------------


@st.composite
def fellegi_sunter(draw: st.DrawFn) -> tuple[float, list[list[float]], list[list[float]]]:
    """A known model: prior, then per comparison m and u over 2-4 levels, well separated.

    At least four comparisons: three two-level ones leave a latent-class model barely
    identified (seven pattern frequencies for seven parameters), and 40,000 pairs then recover
    it only to within about 0.05.
    """
    prior = draw(st.floats(0.1, 0.4))
    m, u = [], []
    for _ in range(draw(st.integers(4, 6))):
        size = draw(st.integers(2, 4))
        # Duplicates mostly land in "same", different records mostly in the last level.
        same = draw(st.floats(0.6, 0.95))
        rest = [draw(st.floats(0.1, 1.0)) for _ in range(size - 1)]
        m.append([same, *((1 - same) * r / sum(rest) for r in rest)])
        chance = draw(st.floats(0.01, 0.15))
        other = [draw(st.floats(0.1, 1.0)) for _ in range(size - 2)] + [5.0]
        u.append([chance, *((1 - chance) * r / sum(other) for r in other)])
    return prior, m, u


@settings(max_examples=15, deadline=None)
@given(fellegi_sunter(), st.integers(0, 2**32 - 1))
def test_m7_em_recovers_a_known_model(
    model: tuple[float, list[list[float]], list[list[float]]], seed: int
) -> None:
    """Pairs drawn from a known Fellegi-Sunter model give back its m, u and prior."""
    prior, m, u = model
    rng = np.random.default_rng(seed)
    n = 40_000
    is_match = rng.random(n) < prior
    columns = []
    for m_levels, u_levels in zip(m, u, strict=True):
        levels = np.where(
            is_match,
            rng.choice(len(m_levels), size=n, p=m_levels),
            rng.choice(len(u_levels), size=n, p=u_levels),
        )
        columns.append(levels + 1)
    matrix = np.stack(columns, axis=1).astype(np.int8)
    names = [f"c{i}" for i in range(len(m))]
    sizes = [len(levels) for levels in m]
    # Start away from the truth: flat-ish m, the truth's u blurred, prior 0.5.
    start = Parameters(
        prior=0.5,
        m={
            name: tuple([0.5] + [0.5 / (size - 1)] * (size - 1))
            for name, size in zip(names, sizes, strict=False)
        },
        u={
            name: tuple([0.1] + [0.9 / (size - 1)] * (size - 1))
            for name, size in zip(names, sizes, strict=False)
        },
    )
    patterns, counts = level_patterns(matrix, sizes)
    fitted = em(patterns, counts, names, start, start.u, records=n)
    assert fitted.prior == pytest.approx(prior, abs=0.02)
    for name, m_levels, u_levels in zip(names, m, u, strict=True):
        assert np.allclose(fitted.m[name], m_levels, atol=0.03), (name, fitted.m[name], m_levels)
        assert np.allclose(fitted.u[name], u_levels, atol=0.03), (name, fitted.u[name], u_levels)


def test_m7_estimation_is_deterministic_and_small_inputs_use_the_shipped_parameters() -> None:
    data = synth.labelled_customers(1_000, seed=4)
    one = find_duplicates(data.records, kind="customer")
    two = find_duplicates(data.records, kind="customer")
    assert one.pairs == two.pairs
    assert one.config is not None
    assert one.config.parameters == two.config.parameters
    assert one.config.parameters is not None
    assert one.config.parameters.records == 1_000
    assert one.config.estimate is False
    few = find_duplicates(data.records[:50], kind="customer")
    assert few.config is not None
    assert few.config.parameters == ck.matching.DEFAULT_PARAMETERS["customer"]


def test_m6_find_similar_scores_as_the_batch_with_its_estimated_config() -> None:
    """A report's config, given to an index, scores each pair as the batch did."""
    data = synth.labelled_contacts(2_000, seed=8)
    report = find_duplicates(data.records, kind="contact")
    assert report.config is not None
    index = MatchIndex.build(data.records[1:], kind="contact", config=report.config)
    first = data.records[0]["id"]
    batch = {
        (p.right_id if p.left_id == first else p.left_id): p.score
        for p in report.pairs
        if first in (p.left_id, p.right_id)
    }
    similar = {m.record["id"]: m.score for m in index.find_similar(data.records[0])}
    assert similar == batch


# --- blank fields and extra comparisons --------------------------------------------------------


def _customer(**fields: str) -> dict[str, str]:
    base = {
        "company_name": "Hansen Equipment",
        "address_line1": "10854 Buffalo Street",
        "city": "Cleveland",
        "state": "OH",
        "postal_code": "44197",
    }
    return {**base, **fields}


def test_m7_a_field_blank_on_one_side_is_no_evidence() -> None:
    config = ck.MatchConfig(estimate=False)
    both_blank = find_duplicates([_customer(), _customer()], kind="customer", config=config)
    one_blank = find_duplicates(
        [_customer(address_line2="Unit 4"), _customer()], kind="customer", config=config
    )
    assert one_blank.pairs[0].match_weight == pytest.approx(both_blank.pairs[0].match_weight)
    fields = {e.field for e in one_blank.pairs[0].comparisons}
    assert "address_line2" not in fields


def test_m7_a_customer_entered_again_with_a_new_number_and_a_typo_in_the_city_is_found() -> None:
    data = synth.labelled_customers(800, seed=12)
    original = next(r for r in data.records if r.get("city") and r.get("state"))
    again = {
        **original,
        "id": "again",
        "customer_number": "NEW-0001",
        "city": original["city"][:-1] + ("x" if original["city"][-1] != "x" else "y"),
        "phone": "",
        "email": "",
        "address_line1": "",
        "postal_code": "",
    }
    report = find_duplicates([*data.records, again], kind="customer")
    assert report.config is not None
    assert report.config.parameters is not None
    assert report.config.parameters.records == 801  # estimated, not the shipped parameters
    found = {(p.left_id, p.right_id) for p in report.pairs}
    assert tuple(sorted((original["id"], "again"))) in found


def test_m7_extra_date_comparison_levels() -> None:
    config = ck.MatchConfig(
        estimate=False, comparisons=(ck.ExtraComparison("date_of_birth", "date"),)
    )

    def level(left: str, right: str) -> str:
        records = [
            {"id": "a", "first_name": "Ann", "last_name": "Lee", "date_of_birth": left},
            {"id": "b", "first_name": "Ann", "last_name": "Lee", "date_of_birth": right},
        ]
        report = find_duplicates(records, kind="contact", config=attrs.evolve(config, threshold=0))
        (pair,) = report.pairs
        return next(e.level for e in pair.comparisons if e.field == "date_of_birth")

    assert level("1956-04-09", "19560409") == "same"
    assert level("1956-04-09", "1956-09-04") == "close"  # day and month swapped
    assert level("1956-04-09", "1956-04-08") == "close"  # one digit off
    assert level("1956-04-09", "1956-11-30") == "within a year"
    assert level("1956-04-09", "1971-12-25") == "different"


def test_m7_extra_exact_comparison_proposes_and_scores_pairs() -> None:
    """Two records that share only a VIN are compared and the VIN counts for them."""
    config = ck.MatchConfig(comparisons=(ck.ExtraComparison("vin", "exact"),), estimate=False)
    records = [
        {"id": "a", "first_name": "Ann", "last_name": "Lee", "vin": "1HGCM82633A004352"},
        {"id": "b", "first_name": "Nora", "last_name": "Quist", "vin": "1hgcm8263-3a004352"},
    ]
    with pytest.warns(ck.UnknownColumnsWarning, match="vin"):
        assert compared_pairs(records, kind="contact") == []
    assert compared_pairs(records, kind="contact", config=config) == [("a", "b")]
    (pair,) = find_duplicates(records, kind="contact", config=config).pairs
    vin = next(e for e in pair.comparisons if e.field == "vin")
    assert (vin.level, vin.weight > 0) == ("same", True)
    assert "same vin" in pair.reasons


def test_m7_contacts_may_carry_addresses() -> None:
    config = ck.MatchConfig(estimate=False, threshold=0.0)
    records = [
        {"id": "a", "first_name": "Ann", "last_name": "Lee", "postal_code": "80202"},
        {"id": "b", "first_name": "Ann", "last_name": "Lee", "postal_code": "10001"},
    ]
    (pair,) = find_duplicates(records, kind="contact", config=config).pairs
    postal = next(e for e in pair.comparisons if e.field == "postal_code")
    assert postal.level == "different"
    assert postal.weight < 0


# --- explain, evaluate, fit, save --------------------------------------------------------------


def test_m7_every_pair_explains_its_score() -> None:
    data = synth.labelled_contacts(1_000, seed=21)
    report = find_duplicates(data.records, kind="contact")
    assert report.config is not None
    assert report.config.parameters is not None
    prior = report.config.parameters.prior
    for pair in report.pairs[:200]:
        total = math.log2(prior / (1 - prior)) + sum(e.weight for e in pair.comparisons)
        assert total == pytest.approx(pair.match_weight, abs=1e-3)
        assert pair.score == pytest.approx(1 / (1 + 2**-pair.match_weight), abs=1e-4)
        assert report.explain(pair.right_id, pair.left_id) == pair.comparisons
    with pytest.raises(KeyError):
        report.explain("no such", "pair")


def test_m7_evaluate_against_truth() -> None:
    records = [
        {"id": "a", "first_name": "Ann", "last_name": "Lee", "email": "ann@x.com"},
        {"id": "b", "first_name": "Ann", "last_name": "Lee", "email": "ann@x.com"},
        {"id": "c", "first_name": "Bo", "last_name": "Park", "phone": "303 555 0101"},
        {"id": "d", "first_name": "Bo", "last_name": "Park", "phone": "3035550101"},
    ]
    report = find_duplicates(records, kind="contact")
    assert {(p.left_id, p.right_id) for p in report.pairs} == {("a", "b"), ("c", "d")}
    result = report.evaluate([("b", "a"), ("a", "c")])
    assert (result.pairs.correct, result.pairs.found, result.pairs.true) == (1, 2, 2)
    assert result.pairs.precision == 0.5
    assert result.pairs.recall == 0.5
    assert result.pairs.f1 == 0.5
    assert result.groups.correct == 1
    assert result.by_threshold[0][0] == 0.5
    assert all(q.found <= result.pairs.found for _, q in result.by_threshold)


def test_m7_fit_from_labelled_pairs() -> None:
    data = synth.labelled_contacts(1_500, seed=5)
    ids = [r["id"] for r in data.records]
    entity = data.truth
    members: dict[object, list[str]] = {}
    for record_id in ids:
        members.setdefault(entity[record_id], []).append(record_id)
    same = [(group[0], group[1]) for group in members.values() if len(group) > 1][:50]
    different = [(a, b) for a, b in zip(ids, ids[7:], strict=False) if entity[a] != entity[b]][:50]
    labelled = [(a, b, True) for a, b in same] + [(a, b, False) for a, b in different]
    config = ck.fit(data.records, labelled, kind="contact")
    assert config.estimate is False
    assert config.parameters is not None
    assert config.parameters.m["email"][0] > config.parameters.u["email"][0]
    assert config.parameters.prior < 0.5  # not the labelled share: most compared pairs differ
    report = find_duplicates(data.records, kind="contact", config=config)
    quality = data.evaluate(report.pairs)
    assert quality.recall >= 0.9
    assert quality.precision >= 0.9
    with pytest.raises(ck.MatchingError, match="duplicate"):
        ck.fit(data.records, [(a, b, True) for a, b in same], kind="contact")
    with pytest.raises(ck.MatchingError, match="not among"):
        ck.fit(data.records, [("nope", ids[0], True), *labelled], kind="contact")


@settings(max_examples=30, deadline=None)
@given(
    threshold=st.floats(0, 1),
    extras=st.lists(
        st.builds(
            ck.ExtraComparison,
            st.text(min_size=1, max_size=8).filter(str.strip),
            st.sampled_from(["exact", "date", "text"]),
        ),
        max_size=3,
    ),
)
def test_m7_config_saves_as_json_and_loads_back(
    threshold: float, extras: list[ck.ExtraComparison]
) -> None:
    config = ck.MatchConfig(
        threshold=threshold,
        comparisons=tuple(extras),
        parameters=ck.matching.DEFAULT_PARAMETERS["customer"],
    )
    assert ck.MatchConfig.from_json(config.to_json()) == config


def test_m7_a_fitted_config_saved_and_loaded_scores_the_same() -> None:
    data = synth.labelled_customers(700, seed=9)
    report = find_duplicates(data.records, kind="customer")
    assert report.config is not None
    loaded = ck.MatchConfig.from_json(report.config.to_json())
    again = find_duplicates(data.records, kind="customer", config=loaded)
    assert [(p.left_id, p.right_id, p.score) for p in again.pairs] == [
        (p.left_id, p.right_id, p.score) for p in report.pairs
    ]


@pytest.mark.parametrize(
    "text", ["", "[1, 2]", '{"threshold": 2}', '{"shreshold": 0.5}', "not json"]
)
def test_m7_a_bad_saved_config_is_refused(text: str) -> None:
    with pytest.raises(ck.MatchConfigError):
        ck.MatchConfig.from_json(text)


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_columns_are_named_in_a_warning() -> None:
    records = [{"first": "Ann", "last": "Lee", "mail": "ann@x.com"}] * 2
    with pytest.warns(ck.UnknownColumnsWarning, match="first, last, mail"):
        report = find_duplicates(records, kind="contact")
    assert report.pairs == ()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_duplicates(
            [{"first_name": "Ann", "customer_id": "c1", "status": "ACTIVE"}], kind="contact"
        )


@pytest.mark.parametrize("bad", ["first_name,last_name", {"first_name": "Ann"}, b"bytes"])
def test_values_that_are_not_records_are_refused(bad: Any) -> None:
    with pytest.raises(ck.MatchingError, match="records"):
        find_duplicates(bad, kind="contact")


@pytest.mark.parametrize("library", ["polars", "pyarrow"])
def test_polars_and_arrow_tables_are_read_as_records_and_written_back(library: str) -> None:
    """Iterating such a table gives its columns; the matcher reads its rows instead."""
    import polars as pl
    import pyarrow as pa

    columns = {
        "id": ["a", "b", "c"],
        "first_name": ["Ann", "Ann", "Bo"],
        "last_name": ["Lee", "Lee", "Park"],
        "email": ["ann@x.com", "ANN@x.com", None],
    }
    table = pl.DataFrame(columns) if library == "polars" else pa.table(columns)
    report = find_duplicates(table, kind="contact")
    assert [(p.left_id, p.right_id) for p in report.pairs] == [("a", "b")]
    assert report.to_polars()["left_id"].to_list() == ["a"]
    arrow = report.to_arrow()
    assert arrow.column("right_email").to_pylist() == ["ANN@x.com"]


def test_matching_errors_are_customerkit_errors() -> None:
    with pytest.raises(ck.MatchingError, match="kind"):
        find_duplicates([], kind="person")  # type: ignore[arg-type]
    with pytest.raises(ck.MatchingError, match="duplicate ids"):
        find_duplicates([{"id": "1"}, {"id": "1"}], kind="contact")
    with pytest.raises(ck.MatchConfigError, match="threshold"):
        ck.MatchConfig(threshold=-1)
    with pytest.raises(ck.MatchConfigError, match="method"):
        ck.ExtraComparison("vin", "fuzzy")  # type: ignore[arg-type]
    assert issubclass(ck.MatchingError, ck.CustomerKitError)
    assert issubclass(ck.MatchingError, ValueError)


def test_progress_moves_with_the_work_in_stages() -> None:
    data = synth.labelled_contacts(800, seed=2)
    calls: list[tuple[str, int, int]] = []
    config = ck.MatchConfig(chunk_size=100)
    report = find_duplicates(
        data.records, kind="contact", config=config, progress=lambda *a: calls.append(a)
    )
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages == ["blocking", "comparing", "estimating", "scoring", "grouping"]
    compared = [(done, total) for stage, done, total in calls if stage == "comparing"]
    assert compared[0] == (0, report.compared)
    assert compared[-1] == (report.compared, report.compared)
    assert [done for done, _ in compared] == sorted(done for done, _ in compared)
    assert len(compared) > 2
