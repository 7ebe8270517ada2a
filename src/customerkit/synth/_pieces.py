"""Building blocks of the generators: seeded streams, weighted tables, phones, emails, people.

Speed matters here (benchmarks generate millions of records), so the hot paths index tuples with
``int(random() * len)`` instead of ``random.choice`` and keep per-record work to string joins.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.data.nicknames import NICKNAME_GROUPS
from customerkit.synth import _data
from customerkit.text import ascii_fold, digits, fold

Rand = Callable[[], float]

ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def derive_rng(seed: int, purpose: str) -> random.Random:
    """A private stream for one purpose: same seed and purpose, same numbers on every platform."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        msg = f"seed must be an int, got {type(seed).__name__}"
        raise TypeError(msg)
    # String seeds are hashed with SHA-512 (seed version 2): stable across platforms and versions.
    return random.Random(f"customerkit.synth/{purpose}/{seed}")


Words = npt.NDArray[np.uint64]

#: Records drawn per block; fixed, so a longer run starts with the same records as a shorter one.
BLOCK = 2048


def words(rng: random.Random, size: int = BLOCK) -> Words:
    """``size`` uniform 32-bit draws from ``rng`` (one ``getrandbits`` call), as uint64."""
    raw = rng.getrandbits(32 * size).to_bytes(4 * size, "little")
    return np.frombuffer(raw, dtype="<u4").astype(np.uint64)


def below(rng: random.Random, p: float, size: int = BLOCK) -> npt.NDArray[np.bool_]:
    """``size`` coin flips that come up True with probability ``p``."""
    return words(rng, size) < np.uint64(round(p * 2**32))


def scaled(rng: random.Random, n: int, size: int = BLOCK) -> Words:
    """``size`` uniform integers in ``range(n)`` (exact integer arithmetic, no floats)."""
    return (words(rng, size) * np.uint64(n)) >> np.uint64(32)


def to_list(array: npt.NDArray[Any]) -> list[int]:
    """An integer array as a list of Python ints."""
    return cast("list[int]", array.tolist())


def weighted(items: Sequence[str], head: int = 30, middle: int = 100) -> tuple[str, ...]:
    """Repeat earlier (more common) items so that a uniform pick favours them."""
    out: list[str] = []
    for rank, item in enumerate(dict.fromkeys(items)):
        out.extend([item] * (6 if rank < head else 3 if rank < middle else 1))
    return tuple(out)


def strip_accents(text: str) -> str:
    """Remove accents, keeping case: "José" -> "Jose"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


SURNAMES = weighted(_data.SURNAMES)
FIRST_NAMES = weighted(_data.FIRST_NAMES)
PLAIN_SURNAMES = tuple(dict.fromkeys(_data.SURNAMES))
BUSINESS_WORDS = weighted(_data.BUSINESS_WORDS, head=12, middle=30)
REGION_WORDS = _data.REGION_WORDS
CITIES = _data.CITIES
AREA_CODES = tuple(sorted({city[3] for city in CITIES}))
FREE_MAIL_DOMAINS = _data.FREE_MAIL_DOMAINS
COMPANY_TLDS = _data.COMPANY_TLDS
TITLES = _data.TITLES

_ACCENTS: dict[str, str] = {**_data.ACCENTED_SURNAMES, **_data.ACCENTED_FIRST_NAMES}
_UNACCENT: dict[str, str] = {accented: plain for plain, accented in _ACCENTS.items()}


def toggle_accents(name: str) -> str | None:
    """The accented spelling of a plain name or the plain one of an accented name, if known."""
    return _ACCENTS.get(name) or _UNACCENT.get(name)


def _nickname_table() -> dict[str, tuple[str, ...]]:
    related: dict[str, dict[str, None]] = {}
    for group in NICKNAME_GROUPS:
        for name in group:
            others = related.setdefault(fold(name), {})
            others.update(dict.fromkeys(strip_accents(n) for n in group if fold(n) != fold(name)))
    return {key: tuple(names) for key, names in related.items()}


#: Folded given name -> display spellings it can be replaced with.
NICKNAME_CHOICES = _nickname_table()

_ASCII: dict[str, str] = {}


def letters(name: str) -> str:
    """ASCII letters of ``name``, lower case (cached): "O'Brien" -> "obrien"."""
    out = _ASCII.get(name)
    if out is None:
        out = "".join(ch for ch in ascii_fold(name) if ch.isalpha())
        _ASCII[name] = out
    return out


def typo(text: str, r: Rand) -> str:
    """One keyboard slip: insert, delete, substitute or transpose one character.

    The first character is left alone (people rarely mistype it) and letters are preferred over
    spaces and punctuation.
    """
    n = len(text)
    if n < 2:
        return text
    pos = 1 + int(r() * (n - 1))
    if not text[pos].isalpha():  # slips happen on letters; try once more, then take a neighbour
        pos = 1 + int(r() * (n - 1))
        if not text[pos].isalpha() and text[pos - 1].isalpha() and pos > 1:
            pos -= 1
    op = int(r() * 4)
    letter = ALPHABET[int(r() * 26)]
    if text[pos].isupper():
        letter = letter.upper()
    if op == 0:
        return text[:pos] + letter + text[pos:]
    if op == 1 and n > 2:
        return text[:pos] + text[pos + 1 :]
    if op == 3 and pos < n - 1:
        return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
    if letter.lower() == text[pos].lower():
        letter = ALPHABET[(ALPHABET.index(letter.lower()) + 1) % 26]
    return text[:pos] + letter + text[pos + 1 :]


def extra_whitespace(text: str, r: Rand) -> str:
    """Doubled inner space or a stray surrounding space, as pasted data often has."""
    if " " in text and r() < 0.6:
        return text.replace(" ", "  ", 1)
    return text + " " if r() < 0.5 else " " + text


# --- phones -----------------------------------------------------------------------------------

#: Ways US numbers get typed, weighted by repetition.
PHONE_FORMATS: tuple[str, ...] = (
    "({0}) {1}-{2}",
    "({0}) {1}-{2}",
    "({0}) {1}-{2}",
    "({0}) {1}-{2}",
    "{0}-{1}-{2}",
    "{0}-{1}-{2}",
    "{0}-{1}-{2}",
    "{0}.{1}.{2}",
    "+1 {0} {1} {2}",
    "{0}{1}{2}",
    "+1 ({0}) {1}-{2}",
    "1-{0}-{1}-{2}",
    "{0} {1} {2}",
    "+1{0}{1}{2}",
)
_DISTINCT_FORMATS = tuple(dict.fromkeys(PHONE_FORMATS))
_EXTENSION_FORMATS = (" x{x}", " ext. {x}", " ext {x}", " Ext. {x}")
_LOCAL_SPACE = 8_000_000  # exchanges 200-999 times lines 0000-9999
_EXCHANGES = tuple(str(200 + k) for k in range(800))
_LINES = tuple(f"{k:04d}" for k in range(10_000))


def reformat_phone(text: str, r: Rand) -> str:
    """The same number (and extension) typed in another of the common formats."""
    for marker in (" x", " ext", " Ext"):
        at = text.find(marker)
        if at >= 0:
            cut = at
            break
    else:
        cut = len(text)
    main, extension = text[:cut], text[cut:]
    number = digits(main)[-10:]
    if len(number) < 10:
        return text
    area, exchange, line = number[:3], number[3:6], number[6:]
    k = int(r() * len(_DISTINCT_FORMATS))
    for step in range(len(_DISTINCT_FORMATS)):
        fmt = _DISTINCT_FORMATS[(k + step) % len(_DISTINCT_FORMATS)]
        out = fmt.format(area, exchange, line)
        if out != main:
            return out + extension
    return text


N_PHONE_FORMATS = len(PHONE_FORMATS)


def extension_codes(rng: random.Random, share: float, size: int = BLOCK) -> Words:
    """Per record 0 (no extension) or an extension code for ``PhoneBook.new``."""
    has = below(rng, share, size)
    value = scaled(rng, 390, size) + np.uint64(10)
    style = scaled(rng, len(_EXTENSION_FORMATS), size)
    return np.where(has, style * np.uint64(1000) + value, np.uint64(0)).astype(np.uint64)


class PhoneBook:
    """Hands out phone numbers that are distinct within one generator run.

    Each area code has its own counter whose values go through a seeded affine permutation of
    the 8,000,000 local numbers, so numbers look random but never repeat (up to 8 million per
    area code) and no set of used numbers has to be kept.
    """

    def __init__(self, rng: random.Random) -> None:
        mult = rng.randrange(_LOCAL_SPACE // 3, 2 * _LOCAL_SPACE // 3) | 1
        while mult % 5 == 0:
            mult += 2
        self._mult = mult
        self._offset = rng.randrange(_LOCAL_SPACE)
        self._used: dict[str, int] = {}

    def new(self, area: str, fmt: int, extension: int = 0) -> str:
        """A fresh number in ``area``, typed in format ``fmt`` (an index into the formats).

        ``extension`` is either 0 (none) or a value whose last three digits give the extension
        and whose thousands give how it is written (" x123", " ext. 123", ...).
        """
        k = self._used.get(area, 0)
        if k >= _LOCAL_SPACE:
            msg = f"more than {_LOCAL_SPACE} phone numbers requested for area code {area}"
            raise OverflowError(msg)
        self._used[area] = k + 1
        local = (self._mult * k + self._offset + int(area) * 7919) % _LOCAL_SPACE
        exchange, line = divmod(local, 10_000)
        text = PHONE_FORMATS[fmt].format(area, _EXCHANGES[exchange], _LINES[line])
        if extension:
            style, value = divmod(extension, 1000)
            text += _EXTENSION_FORMATS[style % len(_EXTENSION_FORMATS)].format(x=value)
        return text


# --- emails -----------------------------------------------------------------------------------


class EmailBook:
    """Hands out email addresses that are distinct within one generator run.

    Addresses are built from a digit-free stem (``john.smith``, ``millertrucking``) and, when the
    stem was used before, its use count (``john.smith3``), so they never repeat while memory grows
    only with the number of distinct stems. With ``track=True`` every address (and every
    corrupted one handed to ``claim``) is also remembered, so corruptions can be kept from
    landing on another entity's address.
    """

    def __init__(self, *, track: bool = False) -> None:
        self._uses: dict[str, int] = {}
        self._taken: set[str] | None = set() if track else None

    def _next(self, stem: str, before: str, after: str) -> str:
        """``before + stem[k] + after`` for the first free use ``k`` of ``stem``."""
        k = self._uses.get(stem, 0)
        while True:
            email = f"{before}{stem}{after}" if k == 0 else f"{before}{stem}{k + 1}{after}"
            k += 1
            if self._taken is None:
                break
            key = email.lower()
            if key not in self._taken:
                self._taken.add(key)
                break
        self._uses[stem] = k
        return email

    def person(self, first: str, last: str, domain: str, pattern: int) -> str:
        """An address for a person; ``pattern`` (0-999) picks the usual local-part pattern."""
        f, s = letters(first) or "x", letters(last) or "x"
        x = pattern / 1000
        if x < 0.35:
            stem = f"{f}.{s}"
        elif x < 0.6:
            stem = f[0] + s
        elif x < 0.7:
            stem = f + s
        elif x < 0.75:
            stem = f"{f}_{s}"
        elif x < 0.8:
            stem = s + f[0]
        elif x < 0.85:
            stem = f"{f}.{s[0]}"
        elif x < 0.9:
            stem = f
        else:
            stem = f"{f[0]}.{s}"
        return self._next(stem, "", "@" + domain)

    def company(self, slug: str, mailbox: str, domain: str | None, tld: str) -> str:
        """A company address: ``mailbox@slug.tld``, or ``slug@domain`` for a free-mail one."""
        if domain is None:
            return self._next(slug, f"{mailbox}@", "." + tld)
        return self._next(slug, "", "@" + domain)

    def claim(self, email: str) -> bool:
        """Reserve a corrupted address; False when it is taken (or tracking is off)."""
        if self._taken is None:
            return False
        key = email.lower()
        if key in self._taken:
            return False
        self._taken.add(key)
        return True


def recase_email(email: str, r: Rand) -> str:
    """The same address with its letters' case changed, as people type them."""
    local, _, domain = email.partition("@")
    x = r()
    if x < 0.4:
        out = f"{local[:1].upper()}{local[1:]}@{domain[:1].upper()}{domain[1:]}"
    elif x < 0.7:
        out = email.upper()
    else:
        out = ".".join(part[:1].upper() + part[1:] for part in local.split(".")) + "@" + domain
    return out if out != email else email.upper()


def email_typo(email: str, r: Rand) -> str:
    """One slip in the local part of an address."""
    local, _, domain = email.partition("@")
    return f"{typo(local, r)}@{domain}"


# --- people -----------------------------------------------------------------------------------


@attrs.define(eq=False)
class Person:
    """A generated contact person, kept with the parts corruptions need."""

    # Positional on purpose: built once per person, keywords cost more.
    first: str
    last: str
    email: str
    phone: str
    title: int
    title_short: bool

    def title_text(self, *, short: bool | None = None) -> str:
        """The job title as typed (``short`` forces the abbreviated or the long form)."""
        if self.title < 0:
            return ""
        pair = TITLES[self.title]
        return pair[1] if (self.title_short if short is None else short) else pair[0]

    def record(self) -> dict[str, str]:
        """The person's contact fields as typed."""
        return {
            "first_name": self.first,
            "last_name": self.last,
            "email": self.email,
            "phone": self.phone,
            "title": self.title_text(),
        }


def company_domain(r: Rand) -> tuple[str, str]:
    """A made-up company domain (surname + business word) and its display name's surname."""
    surname = SURNAMES[int(r() * len(SURNAMES))]
    word = BUSINESS_WORDS[int(r() * len(BUSINESS_WORDS))]
    tld = COMPANY_TLDS[int(r() * len(COMPANY_TLDS))]
    return f"{letters(surname)}{letters(word)}.{tld}", surname


_ACCENTABLE_FIRST = tuple(name in _ACCENTS for name in FIRST_NAMES)
_ACCENTABLE_LAST = tuple(name in _ACCENTS for name in SURNAMES)


class PersonFactory:
    """Makes distinct people: names may repeat (as in real life), emails and phones never do.

    Random choices are drawn a block of people at a time (see ``words``), which keeps the
    per-person cost to a few list look-ups and string joins.
    """

    def __init__(self, rng: random.Random, emails: EmailBook, phones: PhoneBook) -> None:
        self._rng = rng
        self._emails = emails
        self._phones = phones
        self._rows = self._draw()

    def _draw(self) -> Iterator[tuple[int, ...]]:
        rng = self._rng
        n_free = len(FREE_MAIL_DOMAINS)
        while True:
            first = scaled(rng, len(FIRST_NAMES)) * np.uint64(2) + below(rng, 0.3)
            last = scaled(rng, len(SURNAMES)) * np.uint64(2) + below(rng, 0.25)
            # 0: own surname, 1: the customer's family name, 2: double-barrelled.
            surname_kind = np.where(below(rng, 0.2), 1, np.where(below(rng, 0.02), 2, 0))
            other = scaled(rng, len(PLAIN_SURNAMES))
            # 0: email and phone, 1: phone only, 2: email only.
            reach = np.where(below(rng, 0.08), 1, np.where(below(rng, 0.08), 2, 0))
            # -1: the customer's domain, else a free-mail domain.
            free = np.where(below(rng, 0.5), -1, scaled(rng, n_free).astype(np.int64))
            pattern = scaled(rng, 1000)
            recase = below(rng, 0.04)
            area = scaled(rng, len(AREA_CODES))
            fmt = scaled(rng, N_PHONE_FORMATS)
            extension = extension_codes(rng, 0.05)
            title = np.where(
                below(rng, 0.35),
                -1,
                (scaled(rng, len(TITLES)) * np.uint64(2) + below(rng, 0.2)).astype(np.int64),
            )
            yield from zip(
                *(
                    to_list(column)
                    for column in (
                        first,
                        last,
                        surname_kind,
                        other,
                        reach,
                        free,
                        pattern,
                        recase,
                        area,
                        fmt,
                        extension,
                        title,
                    )
                ),
                strict=True,
            )

    def new(self, family: str | None = None, domain: str | None = None) -> Person:
        """A person, sometimes of the customer's ``family`` and with an address at ``domain``."""
        (first_code, last_code, surname_kind, other, reach, free, pattern, recase, area, fmt,
         extension, title) = next(self._rows)  # fmt: skip
        first = FIRST_NAMES[first_code >> 1]
        if first_code & 1 and _ACCENTABLE_FIRST[first_code >> 1]:
            first = _ACCENTS[first]
        if surname_kind == 1 and family is not None:
            last = family
        else:
            last = SURNAMES[last_code >> 1]
            if last_code & 1 and _ACCENTABLE_LAST[last_code >> 1]:
                last = _ACCENTS[last]
            if surname_kind == 2:
                last = f"{last}-{PLAIN_SURNAMES[other]}"
        email = ""
        if reach != 1:
            if free >= 0 or domain is None:
                domain = FREE_MAIL_DOMAINS[free if free >= 0 else pattern % len(FREE_MAIL_DOMAINS)]
            email = self._emails.person(first, last, domain, pattern)
            if recase:
                email = recase_email(email, self._rng.random)
        phone = ""
        if reach != 2:
            phone = self._phones.new(AREA_CODES[area], fmt, extension)
        if title < 0:
            return Person(first, last, email, phone, -1, False)
        return Person(first, last, email, phone, title >> 1, bool(title & 1))
