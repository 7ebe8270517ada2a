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
from types import MappingProxyType

from customerkit.text import fold

__all__ = ["NICKNAMES", "NICKNAME_GROUPS", "nicknames_of", "same_given_name"]

#: Groups of interchangeable given names, formal name first, as people type them.
NICKNAME_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Robert", "Bob", "Bobby", "Rob", "Robbie", "Bert"),
    ("William", "Bill", "Billy", "Will", "Willy", "Liam"),
    ("Elizabeth", "Liz", "Beth", "Betty", "Lizzie", "Eliza", "Libby", "Betsy"),
    ("James", "Jim", "Jimmy", "Jamie"),
    ("Katherine", "Kate", "Kathy", "Katie", "Kat", "Kay"),
    ("Catherine", "Cathy", "Kate", "Katie", "Cat"),
    ("Kathleen", "Kathy", "Kate", "Katie"),
    ("Michael", "Mike", "Mikey", "Mick"),
    ("Richard", "Rick", "Ricky", "Rich", "Richie", "Dick"),
    ("Thomas", "Tom", "Tommy"),
    ("Joseph", "Joe", "Joey"),
    ("Charles", "Charlie", "Chuck", "Chas"),
    ("Christopher", "Chris", "Kit"),
    ("Christine", "Chris", "Chrissy", "Tina"),
    ("Daniel", "Dan", "Danny"),
    ("Matthew", "Matt"),
    ("Anthony", "Tony"),
    ("Andrew", "Andy", "Drew"),
    ("Steven", "Steve"),
    ("Stephen", "Steve"),
    ("Edward", "Ed", "Eddie", "Ted", "Ned"),
    ("Joshua", "Josh"),
    ("Kenneth", "Ken", "Kenny"),
    ("Donald", "Don", "Donnie"),
    ("Ronald", "Ron", "Ronnie"),
    ("Timothy", "Tim", "Timmy"),
    ("Gregory", "Greg"),
    ("Jeffrey", "Jeff"),
    ("Benjamin", "Ben", "Benny"),
    ("Samuel", "Sam", "Sammy"),
    ("Samantha", "Sam", "Sammy"),
    ("Patrick", "Pat", "Paddy"),
    ("Patricia", "Pat", "Patty", "Trish", "Tricia"),
    ("Margaret", "Maggie", "Meg", "Peggy", "Marge"),
    ("Jennifer", "Jen", "Jenny"),
    ("Jessica", "Jess", "Jessie"),
    ("Susan", "Sue", "Susie"),
    ("Deborah", "Deb", "Debbie"),
    ("Barbara", "Barb", "Barbie"),
    ("Rebecca", "Becky", "Becca"),
    ("Nicholas", "Nick", "Nicky"),
    ("Nicole", "Nikki", "Nicky"),
    ("Alexander", "Alex", "Al", "Xander"),
    ("Alexandra", "Alex", "Alexa", "Lexi"),
    ("Albert", "Al", "Bert"),
    ("Alfred", "Al", "Fred", "Alfie"),
    ("Frederick", "Fred", "Freddy", "Rick"),
    ("Gerald", "Jerry", "Gerry"),
    ("Jerome", "Jerry"),
    ("Lawrence", "Larry"),
    ("Leonard", "Len", "Lenny", "Leo"),
    ("Peter", "Pete"),
    ("Raymond", "Ray"),
    ("Douglas", "Doug"),
    ("Philip", "Phil"),
    ("Phillip", "Phil"),
    ("Victoria", "Vicky", "Tori"),
    ("Jacqueline", "Jackie"),
    ("John", "Jack", "Johnny", "Jon"),
    ("Jonathan", "Jon", "Jonny"),
    ("Nathaniel", "Nate", "Nathan"),
    ("Zachary", "Zach", "Zack"),
    ("Theodore", "Ted", "Teddy", "Theo"),
    ("Abigail", "Abby", "Abbie"),
    ("Dorothy", "Dot", "Dottie"),
    ("Pamela", "Pam"),
    ("Kimberly", "Kim"),
    ("Cynthia", "Cindy"),
    ("Judith", "Judy"),
    ("Valerie", "Val"),
    ("Walter", "Walt", "Wally"),
    ("Eugene", "Gene"),
    ("Harold", "Hal", "Harry"),
    ("Henry", "Hank", "Harry"),
    ("Vincent", "Vince", "Vinny"),
    ("Francis", "Frank"),
    ("Franklin", "Frank"),
    ("Frances", "Fran", "Frankie"),
    ("Gabriel", "Gabe"),
    ("Randall", "Randy"),
    ("Terrence", "Terry"),
    ("Theresa", "Terry", "Tess", "Tessa"),
    ("Cassandra", "Cassie"),
    ("Melissa", "Missy", "Mel"),
    ("Melanie", "Mel"),
    ("Sandra", "Sandy"),
    ("Angela", "Angie"),
    ("Virginia", "Ginny"),
    ("Allison", "Ally", "Allie"),
    ("Daniela", "Dani"),
    ("José", "Pepe"),
    ("Francisco", "Paco", "Pancho", "Frank"),
    ("Alejandro", "Alex", "Alejo"),
    ("Roberto", "Beto"),
    ("Alberto", "Beto"),
    ("Manuel", "Manny"),
    ("Jesús", "Chuy"),
    ("Ignacio", "Nacho"),
    ("Eduardo", "Lalo", "Eddie"),
    ("Guadalupe", "Lupe"),
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
