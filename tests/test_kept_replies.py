"""Replies kept with their update until shown (handlers.kept_replies): what comes back is what went in."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import kept_replies
from handlers.messages import Attachment, Button, Field, Form, FormField, Reply

text = st.text(max_size=40)
buttons = st.builds(Button, text, st.text(alphabet="abcdefghij:0123456789", max_size=60),
                    st.sampled_from([None, "primary", "danger"]))
forms = st.builds(Form, text, text, st.tuples(st.builds(
    FormField, text, text, st.booleans(), st.booleans(), st.lists(st.tuples(text, text), max_size=3).map(tuple))),
    context=st.dictionaries(text, text, max_size=2))
replies = st.builds(
    Reply, text=text, title=text, fields=st.lists(st.builds(Field, text, text), max_size=3),
    items=st.lists(text, max_size=3), buttons=st.lists(st.lists(buttons, max_size=2), max_size=2),
    file=st.none() | st.builds(Attachment, text, st.binary(max_size=64), text),
    image=st.none() | st.builds(Attachment, text, st.binary(max_size=64)),
    edit=st.booleans(), private=st.booleans(), form=st.none() | forms, notice=text,
    form_errors=st.dictionaries(text, text, max_size=2),
)


@given(st.lists(replies, max_size=3))
def test_kept_replies_come_back_as_they_were(kept: list[Reply]) -> None:
    assert kept_replies.loads(kept_replies.dumps(kept)) == kept


@pytest.mark.parametrize("stored", ["", "{}", "[1]", '[{"type": "Popen", "fields": {}}]', '[{"type": "Field", "fields":'
                                    ' {"label": "a", "value": "b"}}]', '[{"fields": {}}]'])
def test_anything_else_is_refused(stored: str) -> None:
    with pytest.raises(ValueError):
        kept_replies.loads(stored)
