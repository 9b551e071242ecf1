"""Data quality on the way in: one form for phones, e-mails, tags and names.

Every door (commands, forms, CSV import) goes through these, so `+86 138-0013-8000`
and `13800138000` are the same phone and `VIP`, `ｖｉｐ` and `vip` the same tag.
Errors are `InvalidValue(field, value)`; the handlers turn them into a message
(`InvalidValue.key`, with the reason when there is one: `error.invalid.phone_letters`).
"""
from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

MAX_TAG = 64
#: Characters nobody sees that change what others read: zero-width ones, and the direction marks and
#: overrides that make `Invoice\u202egpj.exe` show as "Invoiceexe.jpg". Every stored text loses them.
INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_OUT = {ord(ch): None for ch in INVISIBLE}
MAX_EXTENSION_DIGITS = 7


class InvalidValue(ValueError):
    """`field` is the field (or kind of problem), `value` what was given; `reason` says why when the
    field has several ways of being wrong (a phone: `letters`, `too_short` …), `params` fill its message."""

    def __init__(self, field: str, value: str, reason: str = "", **params: str) -> None:
        super().__init__(f"invalid {field}: {value!r}" + (f" ({reason})" if reason else ""))
        self.field = field
        self.value = value
        self.reason = reason
        self.params = params

    @property
    def key(self) -> str:
        """The catalogue entry that explains it."""
        return f"error.invalid.{self.field}" + (f"_{self.reason}" if self.reason else "")


def visible(text: str) -> str:
    """The text without invisible characters (`INVISIBLE`): the one cleaning step of every door
    (typed commands, forms, guided answers, CSV), applied by each write of storage."""
    return text.translate(_INVISIBLE_OUT)


def fold(text: str) -> str:
    """NFKC (full-width → half-width) and whitespace collapsed; case kept."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def typed(text: str, *, lines: bool = False) -> str:
    """A text field as it was typed: full-width punctuation kept (华东贸易（上海）有限公司 is a
    registered name, and `，` is Chinese), only spaces trimmed and collapsed; with `lines`, line
    breaks kept (preferences), else the field is one line (an address from a vCard's three)."""
    if not lines:
        return " ".join(text.split())
    kept = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in kept if line)


#: ASCII punctuation and the full-width forms Chinese text writes it in.
_FULL_WIDTH = str.maketrans("(),:;", "（），：；")


def spellings(text: str) -> set[str]:
    """The spellings a stored text field may hold for what `text` says (as typed, width-folded, with
    full-width punctuation): how SQL, which knows no NFKC, compares one text with another."""
    folded = fold(text)
    return {typed(text), folded, folded.translate(_FULL_WIDTH)}


def clean_name(name: str) -> str:
    cleaned = fold(name).strip("\"'")
    if not cleaned or len(cleaned) > 200 or not any(ch.isalnum() for ch in cleaned):
        raise InvalidValue("name", name)
    return cleaned


#: An extension at the end: `转801`, `分机 801`, `ext. 801`, `x801`, `#801`, `;ext=801`.
_EXTENSION = re.compile(r"\s*(?:转|轉|分机|分機|ext\.?|extension|x|#|;\s*ext=)\s*(\d{1,%d})\s*$" % MAX_EXTENSION_DIGITS,
                        re.IGNORECASE)
#: `021-6123 4567-801`: a short group after the last dash of a number that is whole without it.
_DASH_EXTENSION = re.compile(r"^(.*\d.*)-(\d{1,4})$")
_PHONE_CHARACTERS = re.compile(r"[0-9+\-(). /]+")
#: What Excel shows of a long number it has turned into a float (`1.38001E+10`): the digits are gone.
_SCIENTIFIC = re.compile(r"[0-9]+(?:[.,][0-9]+)?E\+?[0-9]+", re.IGNORECASE)
_POSSIBLE = phonenumbers.ValidationResult
#: Digits among letters that make a text a number spelled with letters rather than words.
_SPELLED_DIGITS = 3


def phone(raw: str, region: str) -> str:
    """E.164 (`+8613800138000`; with an extension `+862161234567;ext=801`).

    A phone is a valid number of the book's `region` as written there (a Chinese
    landline with its leading 0, a mobile as is), or a valid number of the
    country it is written with (`+1 …`, `001 …`). Anything else is refused with
    its reason; letters are never read as keypad digits (`1-800-FLOWERS`).
    """
    text = fold(raw)
    if region.upper() == "CN" and (mobile := _plain_cn_mobile(text)):
        return mobile
    return _phone(text, region, raw)


_CN = phonenumbers.PhoneMetadata.metadata_for_region("CN")
_CN_MOBILE = re.compile(_CN.mobile.national_number_pattern)
_CN_CARRIER_PREFIX = re.compile(_CN.national_prefix_for_parsing)


def _plain_cn_mobile(text: str) -> str | None:
    """`13800138000` in a Chinese book, without phonenumbers' full parse (most of an import's time
    went there): 11 ASCII digits that libphonenumber's own mobile pattern takes and that do not
    start like a carrier prefix it would try to strip (`179xx…`), as the full parse stores them."""
    if len(text) == 11 and text.isascii() and text.isdigit() and _CN_MOBILE.fullmatch(text) \
            and not _CN_CARRIER_PREFIX.match(text):
        return f"+86{text}"
    return None


def _phone(text: str, region: str, raw: str) -> str:
    """`phone()` by libphonenumber's metadata, for any shape of number."""
    if len(text) > 40:
        raise InvalidValue("phone", raw, "too_long", region=region.upper())
    if _SCIENTIFIC.fullmatch(text):
        raise InvalidValue("phone", raw, "excel", region=region.upper())
    main, extension = _split_extension(text)
    if not main:
        raise InvalidValue("phone", raw, "extension_only", region=region.upper())
    if any(ch.isalpha() for ch in main):  # `123abc`, `1-800-FLOWERS`: letters where digits go
        spelled = sum(ch.isdigit() for ch in main) >= _SPELLED_DIGITS
        raise InvalidValue("phone", raw, "letters" if spelled else "", region=region.upper())
    if not _PHONE_CHARACTERS.fullmatch(main) or not any(ch.isdigit() for ch in main):
        raise InvalidValue("phone", raw, region=region.upper())
    number = _valid_number(main, region.upper(), raw)
    if number is None and extension is None and (dashed := _DASH_EXTENSION.match(main)):
        number = _valid_number(dashed[1], region.upper(), raw, quiet=True)
        extension = dashed[2] if number is not None else None
    if number is None:
        _refuse(main, region.upper(), raw)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"{e164};ext={extension}" if extension else e164


def _split_extension(text: str) -> tuple[str, str | None]:
    found = _EXTENSION.search(text)
    if found is None:
        return text.strip(), None
    return text[:found.start()].strip(), found[1]


def _valid_number(text: str, region: str, raw: str, *, quiet: bool = False) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        if quiet:
            return None
        raise InvalidValue("phone", raw, region=region) from None
    if not phonenumbers.is_valid_number(number) or number.extension:
        return None
    if number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY \
            and not _as_written_in(number, text, region):
        return None
    return number


def _as_written_in(number: phonenumbers.PhoneNumber, text: str, region: str) -> bool:
    """A number without a country code is read in the book's region only if it is written the way
    that country writes it: `(415) 555-2671` is not a Chinese number, though +86 415 555 2671 exists
    (Chinese landlines are written with their 0)."""
    digits = "".join(ch for ch in text if ch.isdigit())
    significant = phonenumbers.national_significant_number(number)
    prefix, national_has_prefix = _national_prefix(region, significant[:_FORMAT_DIGITS], len(significant), number)
    return digits in (f"{prefix}{significant}" if national_has_prefix else significant, f"{prefix}{significant}")


#: Leading digits that pick a number's national format (its type and length do the rest).
_FORMAT_DIGITS = 5
_CACHED_FORMATS = 20_000


_NATIONAL_PREFIXES: dict[tuple[str, str, int], tuple[str, bool]] = {}


def _national_prefix(region: str, leading: str, length: int, number: phonenumbers.PhoneNumber) -> tuple[str, bool]:
    """(the region's national prefix, whether numbers starting `leading` of this length are written with
    it): formatting a number is the slow part of reading one, and numbers alike are formatted alike."""
    key = (region, leading, length)
    known = _NATIONAL_PREFIXES.get(key)
    if known is None:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        prefix = (metadata.national_prefix or "") if metadata is not None else ""
        national = "".join(ch for ch in phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
                           if ch.isdigit())
        known = prefix, bool(prefix) and national == prefix + phonenumbers.national_significant_number(number)
        if len(_NATIONAL_PREFIXES) < _CACHED_FORMATS:
            _NATIONAL_PREFIXES[key] = known
    return known


#: Fewer national digits than any country's shortest subscriber number with its area code.
_SHORTEST = 7


def _refuse(text: str, region: str, raw: str) -> None:
    """Raise the reason a number written like this is not a phone of `region` (nor of the country
    it is written with)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as problem:
        country = problem.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
        raise InvalidValue("phone", raw, "country" if country else "", region=region) from None
    why = phonenumbers.is_possible_number_with_reason(number)
    if number.country_code != phonenumbers.country_code_for_region(region):
        reason = "country" if why == _POSSIBLE.INVALID_COUNTRY_CODE else "invalid"
    elif why == _POSSIBLE.TOO_LONG:
        reason = "too_long"
    elif why == _POSSIBLE.TOO_SHORT or len(phonenumbers.national_significant_number(number)) < _SHORTEST:
        reason = "too_short"
    else:
        reason = "region"
    raise InvalidValue("phone", raw, reason, region=region)


#: Plain ASCII addresses (`li.wei@example.cn`): checked here, so an import of 100,000 rows does not
#: pay email-validator's full parse for each; anything else goes to email-validator.
_PLAIN_EMAIL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                          r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63})")


def email(raw: str) -> str:
    """Validated and lower-cased; no DNS lookups (the bot may run offline)."""
    text = fold(raw)
    if len(text) > 254:
        raise InvalidValue("email", raw)
    plain = _PLAIN_EMAIL.fullmatch(text.lower())
    if plain and len(text.partition("@")[0]) <= 64 and plain[1] not in SPECIAL_USE_DOMAIN_NAMES:
        return text.lower()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidValue("email", raw) from None
    return result.normalized.lower()


_TAG_SPLIT = re.compile(r"[\s,;、]+")


def tag(raw: str) -> str:
    """One tag name: width- and case-folded, `#` dropped, inner spaces as `-`."""
    name = "-".join(fold(visible(raw)).casefold().lstrip("#").split())
    if not name or len(name) > MAX_TAG or not any(ch.isalnum() for ch in name):
        raise InvalidValue("tag", raw)
    return name


def tags(raw: str) -> list[str]:
    """Several tags from `vip, hot；重点` (commas, semicolons, 、 or spaces between)."""
    seen: dict[str, None] = {}
    for part in _TAG_SPLIT.split(fold(raw)):
        if part:
            seen[tag(part)] = None
    return list(seen)
