"""US given-name nicknames, for duplicate matching and synthetic data.

``NICKNAME_GROUPS`` lists groups of given names that can stand for one another, formal name
first ("Robert", "Bob", "Rob", ...). ``NICKNAMES`` maps every folded name (see
``customerkit.text.fold``) to the folded names it shares a group with. A nickname may belong
to several groups ("Al" is Albert, Alfred or Alexander), so the relation is not transitive
("Albert" and "Alfred" are not nicknames of each other), but it is symmetric::

    b in NICKNAMES[a]  <=>  a in NICKNAMES[b]

>>> "robert" in NICKNAMES["bob"] and "bob" in NICKNAMES["robert"]
True
>>> same_given_name("Liz", "ELIZABETH"), same_given_name("Albert", "Alfred")
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from types import MappingProxyType

from customerkit.text import fold

__all__ = ["NICKNAMES", "NICKNAME_GROUPS", "nicknames_of", "same_given_name"]

#: Groups of interchangeable given names, formal name first, as people type them (the table
#: is data: it lives in ``nicknames.txt`` beside this module, one group a line).
NICKNAME_GROUPS: tuple[tuple[str, ...], ...] = tuple(
    tuple(name.strip() for name in line.split(","))
    for line in (files("customerkit.data") / "nicknames.txt")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip() and not line.startswith("#")
)


def _build(groups: tuple[tuple[str, ...], ...]) -> Mapping[str, frozenset[str]]:
    related: dict[str, set[str]] = {}
    for group in groups:
        keys = {fold(name) for name in group}
        for key in keys:
            related.setdefault(key, set()).update(keys - {key})
    return MappingProxyType({key: frozenset(others) for key, others in sorted(related.items())})


#: Folded given name -> the folded names it can stand for (symmetric, never contains itself).
NICKNAMES: Mapping[str, frozenset[str]] = _build(NICKNAME_GROUPS)


def nicknames_of(name: str) -> frozenset[str]:
    """The folded names ``name`` can stand for (empty when it has no known nickname).

    Args:
        name: A given name as typed; it is folded first.

    Returns:
        The related folded names, without ``name`` itself.
    """
    return NICKNAMES.get(fold(name).strip(), frozenset())


def same_given_name(left: str, right: str) -> bool:
    """Whether two given names are equal once folded, or nicknames of each other.

    Args:
        left: A given name as typed.
        right: Another given name as typed.

    Returns:
        True for "Bob"/"robert", "Liz"/"Elizabeth", "José"/"jose"; False otherwise.
    """
    a, b = fold(left).strip(), fold(right).strip()
    return a == b or b in NICKNAMES.get(a, frozenset())
