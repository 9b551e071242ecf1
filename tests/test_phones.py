"""One phone rule at every door (storage.standardise.phone): a valid number of the book's region as
that country writes it, or a valid number of the country it is written with; otherwise refused with
the reason. Letters are never keypad digits; extensions stay with the number."""
from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from storage import standardise
from storage.models import Customer
from storage.standardise import InvalidValue, phone
from tests.chat import Chat


@pytest.mark.parametrize("typed, region, stored", [
    ("13800138000", "CN", "+8613800138000"),
    ("+86 138-0013-8000", "CN", "+8613800138000"),
    ("021 6123 4567", "CN", "+862161234567"),
    ("（021）6123 4567", "CN", "+862161234567"),
    ("0415-5552671", "CN", "+864155552671"),
    ("+1 (415) 555-2671", "CN", "+14155552671"),
    ("001 415 555 2671", "CN", "+14155552671"),
    ("(415) 555-2671", "US", "+14155552671"),
    ("1-800-356-9377", "US", "+18003569377"),
    ("030 1234567", "DE", "+49301234567"),
    ("021-6123 4567 转 801", "CN", "+862161234567;ext=801"),
    ("021-61234567-801", "CN", "+862161234567;ext=801"),
    ("+1 415 555 2671 ext. 12", "CN", "+14155552671;ext=12"),
    ("0755 8888 1234 分机 7", "CN", "+8675588881234;ext=7"),
])
def test_valid_numbers_are_stored_in_e164_with_their_extension(typed: str, region: str, stored: str) -> None:
    assert phone(typed, region) == stored


@pytest.mark.parametrize("typed, region, reason", [
    ("(415) 555-2671", "CN", "region"),  # a US number without +1 is not read as +86 415 …
    ("301234567", "DE", "region"),  # a German landline is written with its 0
    ("12345", "CN", "too_short"),
    ("+8612345", "CN", "too_short"),
    ("123abc", "CN", "letters"),
    ("1-800-FLOWERS", "US", "letters"),
    ("138001380001234", "CN", "too_long"),
    ("+1 021 6123", "CN", "invalid"),
    ("转8", "CN", "extension_only"),
    ("1.38001E+10", "CN", "excel"),
    ("call me", "CN", ""),
])
def test_anything_else_is_refused_with_its_reason(typed: str, region: str, reason: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        phone(typed, region)
    assert (refused.value.field, refused.value.reason) == ("phone", reason)


def test_a_plain_chinese_mobile_is_read_as_the_full_parse_reads_it() -> None:
    """The shortcut for `13800138000` in a CN book (an import's most common cell) stores what
    libphonenumber's full reading stores, and refuses what it refuses, for every 1xx block
    (carrier prefixes like 17951 included)."""
    rng = random.Random(11)
    typed = [f"{block}{rng.randrange(10**8):08d}" for block in range(100, 200) for _ in range(30)]
    typed += [f"17951{rng.randrange(10**6):06d}" for _ in range(30)] + ["17400000000", "17406000000"]
    shortcuts = 0
    for text in typed:
        try:
            full = standardise._phone(text, "CN", text)
        except InvalidValue as refused:
            full = refused.reason
        try:
            stored = phone(text, "CN")
        except InvalidValue as refused:
            stored = refused.reason
        assert stored == full, text
        shortcuts += standardise._plain_cn_mobile(text) is not None
    assert shortcuts > len(typed) / 2  # the shortcut is taken for most of them, not skipped


async def phones(chat: Chat) -> dict[str, str | None]:
    async with chat.core.db.transaction() as session:
        return {c.name: c.phone for c in await session.scalars(select(Customer))}


async def test_add_refuses_a_short_number_instead_of_taking_it_as_a_name(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 测试 12345")
    assert alice.text.startswith("“12345” is too short for a phone number in CN.")
    await bob.say("/add 测试 12345")
    assert bob.text.startswith("“12345”作为CN的电话号码太短了")
    await alice.say('/add "Studio 54"')  # digits in a quoted name stay the name
    assert await phones(alice) == {"Studio 54": None}


async def test_edit_follows_the_same_rule_and_keeps_the_good_number(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 王芳 13800138000")
    for typed in ("电话=123abc", "phone=1-800-FLOWERS", "电话=12345", "phone=(415)5552671"):
        await alice.say(f"/edit 王芳 {typed}")
        assert "phone number" in alice.text, typed
    assert await phones(alice) == {"王芳": "+8613800138000"}  # nothing overwritten
    await alice.say("/edit 王芳 电话=021-6123-4567转801")
    assert (await phones(alice))["王芳"] == "+862161234567;ext=801"
    await bob.say("/add 李伟 13900139000")
    await bob.say("/edit 李伟 电话=123abc")
    assert "里面有字母" in bob.text


async def test_guided_add_asks_again_for_a_spelled_number(alice: Chat) -> None:
    await alice.say("/add")
    await alice.say("张三")
    await alice.press("Skip")
    await alice.press("Skip")
    await alice.say("1-800-FLOWERS")
    assert "it has letters" in alice.text and "(4/8) Phone?" in alice.text
    await alice.say("+1 800 356 9377")
    assert "(5/8)" in alice.text


async def test_form_submission_gets_the_reason_beside_the_field(alice: Chat) -> None:
    await alice.submit("add", {"name": "Zhou Jie", "phone": "(415) 555-2671"})
    [reply] = alice.last
    assert "isn't a valid phone number in CN" in reply.form_errors["phone"]
    assert await phones(alice) == {}
