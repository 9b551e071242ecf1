"""Errors that end a command with a message for the user.

A `UserError` carries a catalogue key and its parameters, never a sentence:
the dispatcher renders it in the member's language, rolls the transaction back
and replies, so bad input changes nothing.
"""
from __future__ import annotations


class UserError(Exception):
    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def __repr__(self) -> str:
        return f"UserError({self.key!r}, {self.params!r})"
