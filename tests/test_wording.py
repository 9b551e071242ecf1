"""What a native speaker reads: each command's own example when its customer is missing, auto-tag
names in the member's language, and one kind of punctuation per Chinese message."""
from __future__ import annotations

import re

import pytest

from handlers.i18n import catalogue
from tests.chat import Chat

NEEDS_A_CUSTOMER = ("merge", "deal", "feedback", "assign", "tag", "edit", "delete", "restore", "forget", "history")


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_command_without_its_customer_shows_its_own_example(core, language: str) -> None:
    admin = Chat(core, user_id="alice", name="Alice", language=language)
    for name in NEEDS_A_CUSTOMER:
        await admin.say(f"/{name}")
        example = catalogue(language)[f"help.cmd.{name}.examples"].strip().splitlines()[0]
        assert example in admin.text and f"/{name} " in admin.text, (name, admin.text)
        assert "/show" not in admin.text, (name, admin.text)


async def test_tag_refuses_an_auto_tag_naming_them_in_the_members_language(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 王芳")
    await bob.say("/tag 王芳 vip")
    assert "（重要客户、新客户、沉默、流失风险、不满意、推荐者、资料不全）" in bob.text
    assert "silent" not in bob.text and "at-risk" not in bob.text
    await alice.say("/tag 王芳 新客户")
    assert "(vip, new, silent, at-risk, unhappy, promoter, incomplete)" in alice.text


async def test_the_wording_a_native_speaker_would_use(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 王芳 birthday=1990-01-01")
    await bob.say("/me")
    assert bob.last[0].title == "我的设置 · console"
    await alice.say("/me")
    assert alice.last[0].title == "My settings · console"
    await alice.say("/edit 王芳 birthday=1990-01-01")
    assert "Nothing changed: Birthday already had those values." in alice.text
    await alice.say("/me lang=zh")
    await alice.say("/edit 王芳 生日=1990-01-01")
    assert "没有变化：生日与原来相同。" in alice.text
    await bob.say("/invite")
    assert bob.text.startswith("只有管理员可以这样做。") and "或更高" not in bob.text
    await bob.say("/export")
    assert bob.text.startswith("这需要经理及以上的角色。")
    await bob.say("/help invite")
    assert "仅限管理员。" in bob.text


@pytest.mark.parametrize("text", ["", "   ", "\u3000"])
async def test_an_empty_message_gets_a_hint_not_unknown_command(alice: Chat, bob: Chat, text: str) -> None:
    await alice.say(text)
    assert alice.text == "Type a command, e.g. /help or /find Li Wei."
    await bob.say(text)
    assert bob.text == "请输入命令，例如 /help 或 /find 李伟。"


_CJK = r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f“”]"
#: A colon, comma, semicolon or question/exclamation mark in ASCII next to Chinese.
_ASCII_NEXT_TO_CHINESE = re.compile(rf"(?<={_CJK})[:,;?!]|[,;?!](?= ?{_CJK})")
_CSV_LINE = re.compile(r"^[^\s,]+(,[^\s,]*)+$")  # a CSV example (姓名,电话,邮箱) is written as the file is


def test_the_chinese_catalogue_uses_full_width_punctuation() -> None:
    offending = []
    for key, text in catalogue("zh").items():
        for line in text.splitlines():
            if _CSV_LINE.match(line.strip()) or "（例如 姓名,电话,邮箱）" in line:
                continue
            if _ASCII_NEXT_TO_CHINESE.search(line):
                offending.append(f"{key}: {line}")
    assert offending == []
