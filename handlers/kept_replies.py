"""Replies as JSON, kept with their update until the platform has shown them.

A process killed after a command committed but before its answer went out
would otherwise leave the user with no answer (and a reason to type the
command again). The core keeps the replies of a platform that reports its
sends (`Request.reports_answers`); a redelivered update gets them back.
Only the vocabulary's own types are rebuilt; bytes travel as base64.
"""
from __future__ import annotations

import base64
import json
from dataclasses import fields, is_dataclass
from typing import Any

from handlers.messages import Attachment, Button, Field, Form, FormField, Reply

TYPES: dict[str, type] = {kind.__name__: kind for kind in (Reply, Field, Button, Attachment, Form, FormField)}


def dumps(replies: list[Reply]) -> str:
    return json.dumps([_plain(reply) for reply in replies], ensure_ascii=False)


def loads(kept: str) -> list[Reply]:
    """The replies `dumps` wrote; ValueError when the text is not that."""
    stored = json.loads(kept)
    if not isinstance(stored, list):
        raise ValueError("not kept replies")
    try:
        replies = [_rebuilt(value) for value in stored]
    except (TypeError, KeyError, AttributeError) as problem:
        raise ValueError(f"not kept replies: {problem}") from problem
    if not all(isinstance(reply, Reply) for reply in replies):
        raise ValueError("not kept replies")
    return replies


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, "fields": {f.name: _plain(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {"dict": {key: _plain(item) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _rebuilt(value: Any, *, as_tuple: bool = False) -> Any:
    if isinstance(value, list):
        items = [_rebuilt(item, as_tuple=as_tuple) for item in value]
        return tuple(items) if as_tuple else items
    if not isinstance(value, dict):
        return value
    if "bytes" in value:
        return base64.b64decode(value["bytes"])
    if "dict" in value:
        return {key: _rebuilt(item) for key, item in value["dict"].items()}
    kind = TYPES[value["type"]]
    known = {f.name: str(f.type).startswith("tuple") for f in fields(kind)}
    return kind(**{name: _rebuilt(item, as_tuple=known[name]) for name, item in value["fields"].items()
                   if name in known})
