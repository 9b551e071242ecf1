"""Message catalogues (en, zh) and the one function that renders them.

Catalogues are TOML files under `locales/<lang>/`, one file per subject, merged
at load time; keys are dotted (`error.bad_date`), values use `{name}`
placeholders. Texts never live inline in handlers.
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from string import Formatter

LOCALES = ("en", "zh")
_DIR = Path(__file__).with_name("locales")


def _flatten(table: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@lru_cache(maxsize=None)
def catalogue(locale: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((_DIR / locale).glob("*.toml")):
        with path.open("rb") as fh:
            entries = _flatten(tomllib.load(fh))
        clash = merged.keys() & entries.keys()
        if clash:
            raise ValueError(f"{path}: keys defined twice: {sorted(clash)}")
        merged.update(entries)
    return merged


def normalize_locale(code: str | None, default: str = "en") -> str:
    """`zh-hans`, `zh_CN`, `ZH` → `zh`; anything unknown → `default`."""
    if not code:
        return default
    base = code.replace("_", "-").split("-")[0].lower()
    return base if base in LOCALES else default


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name}


def t(locale: str, key: str, **params: object) -> str:
    """The text for `key` in `locale` (English if missing), with `params` filled in."""
    text = catalogue(normalize_locale(locale)).get(key) or catalogue("en").get(key)
    if text is None:
        raise KeyError(f"no catalogue entry {key!r}")
    return text.format(**params) if params else text
