"""Why a pair scored as it did, in words: its levels that carry a positive weight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from customerkit.matching.comparisons import MISSING, SAME, Compared, Model, levels_of
from customerkit.matching.config import MatchConfig
from customerkit.matching.features import Features

_LABELS: Final[Mapping[str, str]] = {
    "first": "first name",
    "last": "last name",
    "company": "company name",
    "number": "customer number",
    "email": "email",
    "phone": "phone",
    "address": "address",
    "address_line2": "address line 2",
    "city": "city",
    "state": "state",
    "postal": "postal code",
}
_PLURAL: Final[Mapping[str, str]] = {
    "first": "first names",
    "last": "last names",
    "company": "company names",
    "email": "emails",
    "address": "addresses",
    "address_line2": "address lines 2",
    "city": "cities",
    "postal": "postal codes",
}


# Identifiers first, then names, then the rest in the model's order (extras last).
_REASON_ORDER: Final[Mapping[str, int]] = {"number": -3, "email": -2, "phone": -1}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " "))


def _level_reason(name: str, level: str, sim: float) -> str:
    if level == "same":
        return f"same {_label(name)}"
    if level in {"close", "fair"}:
        return f"{_PLURAL.get(name, _label(name) + 's')} similar {sim:.2f}"
    return f"{_label(name)} {level}"


def _name_reasons(
    compared: Compared, k: int, features: Features, model: Model, config: MatchConfig
) -> list[str]:
    """The names' reasons: the usual combinations in a few words, else each name's own level."""
    levels, sim = compared.levels, compared.similarity
    first, last = levels["first"][k], levels["last"][k]
    if compared.swapped[k]:
        return ["names swapped"]
    if first == SAME and last == SAME:
        return ["same name"]
    out = []
    if first == 2:
        text = features.text["first"]
        names = sorted((text[compared.left[k]], text[compared.right[k]]))
        out.append(f"nickname {names[0]}/{names[1]}")
    elif first == 3:
        out.append("same initial")
    elif first in (SAME, 4) and last in (SAME, 2):
        name_sim = (float(sim["first"][k]) + float(sim["last"][k])) / 2
        return [f"names similar {name_sim:.2f}"]
    if last == SAME:
        out.append("same last name")
    elif last == 2 and out:
        out.append(f"last names similar {sim['last'][k]:.2f}")
    elif first == SAME:
        out.append("same first name")
    # A pair may score on names at levels none of the above reads ("ann smith" and "anne
    # smyth": close first names, fair last names): then each name that carries weight.
    return out or _weighed_reasons(("first", "last"), compared, k, model, config)


def _weighed_reasons(
    names: tuple[str, ...], compared: Compared, k: int, model: Model, config: MatchConfig
) -> list[str]:
    """Each of these comparisons whose level carries a positive weight, in words."""
    out = []
    for name in names:
        level = int(compared.levels[name][k])
        if level == MISSING or model.weights[name][level] <= 0:
            continue
        sim = float(compared.similarity[name][k]) if name in compared.similarity else 1.0
        out.append(_level_reason(name, levels_of(name, config)[level - 1], sim))
    return out


def reasons(
    compared: Compared, k: int, features: Features, model: Model, config: MatchConfig
) -> tuple[str, ...]:
    """The reasons pair ``k`` scored as it did, in words: its levels with a positive weight.

    Returns:
        Reasons such as ``"same email"``, ``"nickname bob/robert"``,
        ``"company names similar 0.91"``.
    """
    out: list[str] = []
    for name in sorted(model.names, key=lambda name: _REASON_ORDER.get(name, 0)):
        if name == "last":
            out.extend(_name_reasons(compared, k, features, model, config))
        elif name != "first":
            out.extend(_weighed_reasons((name,), compared, k, model, config))
    return tuple(out)
