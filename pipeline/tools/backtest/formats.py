"""Reading the values of foreign data sets: times, amounts, labels, identifiers and card numbers.

Pure functions and small classes; each raises ValueError with a short detail when a value cannot
be read. The forms chosen here are documented in docs/operations.md, "Replaying your own history":

* free-form ids (outside ``[A-Za-z0-9_.:-]{1,64}``): ``<slug>.<hash>``, the slug being the value's
  allowed characters (accents dropped, other runs become ``_``, at most 47), the hash the first 16
  hex digits of its SHA-256;
* card numbers: ``tok_<hash>``, the first 32 hex digits of HMAC-SHA256(key, digits);
* other card identifiers: ``tok_<its letters and digits, at most 44><hash>``, 16 hex digits of SHA-256.

Hashes are written with the hex digits 0-9 as the letters g-p, so that no token or id made here can
look like a card number to the pipeline's checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.contracts.validation import luhn_valid, text_has_card_number

TimeUnit = Literal["auto", "iso", "s", "ms"]
TIME_UNITS: dict[str, TimeUnit] = {
    "auto": "auto",
    "iso": "iso",
    "s": "s",
    "seconds": "s",
    "ms": "ms",
    "milliseconds": "ms",
}

# --- times ------------------------------------------------------------------------------------
EPOCH_SECONDS = (1e8, 1e11)  # 1973-03-03 .. 5138-11-16
EPOCH_MILLISECONDS = (1e11, 1e14)  # the same instants in milliseconds
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OFFSET = re.compile(r"(?:UTC)?([+-])(\d{2}):?(\d{2})")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")


def zone(name: str) -> tzinfo:
    """``UTC``, an IANA zone name (``Europe/Berlin``) or a fixed offset (``+02:00``)."""
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    if match := _OFFSET.fullmatch(text):
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (an IANA name such as Europe/Berlin, UTC, or +02:00)"
        ) from None


class TimeReader:
    """Event times as RFC 3339 with offset, from ISO 8601 (with or without offset, ``T`` or a space),
    a date and a time joined, epoch seconds or milliseconds (``unit`` auto: told by their magnitude),
    a ``strptime`` format, or datetime values (Parquet). Naive times are read in ``tz``; epoch times
    are shown in ``tz`` too (the same instant); times with an offset keep it."""

    def __init__(self, tz: tzinfo = UTC, unit: TimeUnit = "auto", fmt: str | None = None) -> None:
        self.tz, self.unit, self.fmt = tz, unit, fmt

    def read(self, value: Any, *, joined: bool = False) -> tuple[str, str]:
        """(RFC 3339 text, name of the format it was read from)."""
        if isinstance(value, datetime):
            return self._aware(value).isoformat(), "datetime values"
        if isinstance(value, date):
            return datetime.combine(value, time(), self.tz).isoformat(), "date values"
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self._epoch(float(value))
        text = str(value).strip()
        if self.fmt:
            moment = datetime.strptime(text, self.fmt)
            return self._aware(moment).isoformat(), f"format {self.fmt}"
        if self.unit in ("s", "ms"):
            try:
                number = float(text)
            except ValueError:
                raise ValueError("not a number of epoch seconds or milliseconds") from None
            return self._epoch(number)
        if self.unit == "auto" and _NUMBER.fullmatch(text):
            try:
                return self._epoch(float(text))
            except ValueError:
                if text.isdigit():  # 20200621: an ISO 8601 date in the basic format
                    with contextlib.suppress(ValueError):
                        return self._iso(text, joined)
                raise
        return self._iso(text, joined)

    def _iso(self, text: str, joined: bool) -> tuple[str, str]:
        moment = datetime.fromisoformat(text.upper())
        if joined:
            kind = "date + time columns"
        elif moment.tzinfo is not None:
            if _RFC3339.fullmatch(text):  # already as the contract wants it: kept as written
                return text, "ISO 8601 with offset"
            kind = "ISO 8601 with offset"
        elif text[10:11] == " ":
            kind = "YYYY-MM-DD HH:MM:SS"
        else:
            kind = "ISO 8601 without offset"
        return self._aware(moment).isoformat(), kind

    def _aware(self, moment: datetime) -> datetime:
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.tz)

    def _epoch(self, number: float) -> tuple[str, str]:
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        unit = self.unit
        if unit in ("auto", "iso"):
            if EPOCH_SECONDS[0] <= number < EPOCH_SECONDS[1]:
                unit = "s"
            elif EPOCH_MILLISECONDS[0] <= number < EPOCH_MILLISECONDS[1]:
                unit = "ms"
            else:
                raise ValueError(
                    f"number {number:g} is neither epoch seconds nor milliseconds of 1973-5138 "
                    "(state time_unit s or ms)"
                )
        seconds = number / 1000 if unit == "ms" else number
        moment = datetime.fromtimestamp(seconds, self.tz)
        return moment.isoformat(), "epoch milliseconds" if unit == "ms" else "epoch seconds"


# --- amounts ----------------------------------------------------------------------------------
_AMOUNT = re.compile(r"(?P<pre>[^\d]*?)(?P<num>\d(?:[\d.,' \u00a0\u202f]*\d)?)(?P<post>\D*)")
_GROUPS = {".": re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"), ",": re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")}
_SPACES = str.maketrans("", "", "' \u00a0\u202f")


def _currency_marker(text: str) -> bool:
    """A currency symbol (€, $, R$, ...) or an ISO code (EUR) around an amount, or nothing."""
    rest = text.replace(" ", "").replace("\u00a0", "")
    if not rest or (rest.isalpha() and (rest.isupper() or rest == "kr") and len(rest) <= 3):
        return True
    symbols = sum(unicodedata.category(ch) == "Sc" for ch in rest)
    return (
        symbols == 1
        and len(rest) <= 4
        and all(ch.isalpha() or unicodedata.category(ch) == "Sc" for ch in rest)
    )


def parse_amount(value: Any, decimal: str = ".") -> float:
    """An amount in major units: numbers as they are; text with ``decimal`` as the decimal mark,
    thousands grouped by the other mark, a space or an apostrophe, and a currency symbol or code
    before or after it (``€ 1.234,50``, ``1,234.50 USD``, ``-12,5``)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().replace("\u2212", "-")
        number = _parse_amount_text(text, decimal)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _parse_amount_text(text: str, decimal: str) -> float:
    if decimal == "." and _NUMBER.fullmatch(text):
        return float(text)
    match = _AMOUNT.fullmatch(text)
    if not match:
        raise ValueError("no number")
    pre, num, post = match.group("pre"), match.group("num"), match.group("post")
    negative = "-" in pre or "-" in post
    for part in (pre, post):
        if not _currency_marker(part.replace("-", "").replace("+", "")):
            raise ValueError("not a number")
    num = num.translate(_SPACES)
    other = "," if decimal == "." else "."
    if other in num:
        if not _GROUPS[decimal].fullmatch(num):
            hint = " (a decimal comma? use --decimal ,)" if decimal == "." else " (use --decimal .)"
            raise ValueError(f"{other!r} is neither a decimal mark nor a thousands separator here{hint}")
        num = num.replace(other, "")
    if num.count(decimal) > 1:
        raise ValueError("more than one decimal mark")
    number = float(num.replace(decimal, "."))
    return -number if negative else number


# --- labels and flags -------------------------------------------------------------------------
FRAUD_LABELS = frozenset({"1", "true", "yes", "fraud"})
LEGIT_LABELS = frozenset({"0", "false", "no", "legit"})


def parse_flag(value: Any, true: frozenset[str] = FRAUD_LABELS, false: frozenset[str] = LEGIT_LABELS) -> bool:
    """True or False from a boolean, 0/1 or a word of ``true`` or ``false`` (case-insensitive)."""
    if isinstance(value, bool):
        return value
    text = text_of(value).lower()
    if text in true:
        return True
    if text in false:
        return False
    if _NUMBER.fullmatch(text) and float(text) in (0.0, 1.0):
        return float(text) == 1.0
    raise ValueError(f"expected one of {sorted(true | false)}")


# --- identifiers and card numbers -------------------------------------------------------------
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
TOKEN_PATTERN = re.compile(r"tok_[A-Za-z0-9]{8,64}")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.:-]+")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_MANY_DIGITS = re.compile(r"(?:\d[ -]?){10}\d")  # the least a card column's number holds
_PAN_DIGITS = re.compile(r"(?:\d[ -]?){12}\d")  # the least a Luhn-checked card number holds
_CARD_DIGITS = re.compile(r"\d(?:[ -]?\d){10,18}")
_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def _hash(data: bytes, length: int, key: bytes | None = None) -> str:
    """``length`` hex digits of SHA-256 (HMAC-SHA256 with ``key``), digits written as g-p."""
    digest = hmac.new(key, data, hashlib.sha256) if key is not None else hashlib.sha256(data)
    return digest.hexdigest()[:length].translate(_NO_DIGITS)


def text_of(value: Any) -> str:
    """A value as text: integral floats (from Parquet or pandas) without ``.0``, booleans as words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def may_hold_card_number(text: str, shortest: int = 13) -> bool:
    """Cheap first test: a card number has at least ``shortest`` (11 or 13) digits in a row, spaces
    or dashes aside."""
    return (_PAN_DIGITS if shortest > 11 else _MANY_DIGITS).search(text) is not None


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@lru_cache(maxsize=65536)
def stable_id(text: str) -> str:
    """``text`` if the contract allows it as an id, else ``<slug>.<16 digits of its SHA-256>`` (at most
    64 characters): equal values map to equal ids and different ones, in practice, to different ids."""
    if ID_PATTERN.fullmatch(text):
        return text
    slug = _NOT_ALLOWED.sub("_", _ascii(text)).strip("_")[:47] or "id"
    return f"{slug}.{_hash(text.encode(), 16)}"


class CardTokeniser:
    """Card tokens as the contract wants them (``tok_`` + 8-64 letters and digits). Card numbers
    become ``tok_`` + 32 digits of HMAC-SHA256(key, digits), so they are never kept in clear
    and equal numbers give equal tokens (across runs only with the same key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cache: dict[str, str] = {}

    def keyed(self, text: str) -> str:
        """The keyed token of a card number (its digits) or of a value that holds one."""
        digits = re.sub(r"[ -]", "", text)
        source = digits if digits.isdigit() else text
        token = self._cache.get(source)
        if token is None:
            if len(self._cache) >= 1 << 18:
                self._cache.clear()
            token = "tok_" + _hash(source.encode(), 32, self._key)
            self._cache[source] = token
        return token

    def token(self, text: str) -> tuple[str, bool]:
        """(token, whether ``text`` was a card number). A value of 11-19 digits (spaces or dashes
        between them allowed) counts as a card number, as does any value holding a Luhn-valid one."""
        if not may_hold_card_number(text, 11):
            return (text, False) if TOKEN_PATTERN.fullmatch(text) else (unkeyed_token(text), False)
        if _CARD_DIGITS.fullmatch(text) or text_has_card_number(text):
            return self.keyed(text), True
        return (text, False) if TOKEN_PATTERN.fullmatch(text) else (unkeyed_token(text), False)


@lru_cache(maxsize=65536)
def unkeyed_token(text: str) -> str:
    """``tok_`` + the value's letters and digits (at most 44) + 16 digits of its SHA-256 (as g-p)."""
    return f"tok_{_NOT_ALNUM.sub('', _ascii(text))[:44]}{_hash(text.encode(), 16)}"


def is_card_number(text: str) -> bool:
    """A whole value that is a Luhn-valid card number of 13-19 digits (spaces or dashes allowed)."""
    digits = re.sub(r"[ -]", "", text)
    return digits.isdigit() and 13 <= len(digits) <= 19 and luhn_valid(digits)


# --- fractions --------------------------------------------------------------------------------
def parse_fraction(text: str) -> float:
    """``1%``, ``0.5 %`` or ``0.01`` -> a fraction in [0, 1]."""
    raw = str(text).strip()
    percent = raw.endswith("%")
    try:
        number = float(raw.removesuffix("%").strip())
    except ValueError:
        raise ValueError(f"not a fraction or a percentage: {text!r}") from None
    if not percent and number > 1:
        raise ValueError(f"{text!r}: a fraction is at most 1 (write {number:g}% for a percentage)")
    fraction = number / 100 if percent else number
    if not 0 <= fraction <= 1:
        raise ValueError(f"{text!r} is not between 0 and 100 %")
    return fraction
