"""/add, /show, /edit, /find and the "which one?" / "same person?" choices, on SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import func, select

from handlers.cards import CARD_SUMMARY_CHARS
from storage.models import AuditEntry, Customer, Interaction
from tests.chat import Chat


async def count_customers(chat: Chat) -> int:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(Customer)) or 0


async def test_add_standardises_and_shows_card(alice: Chat) -> None:
    await alice.say('/add 李伟 138-0013-8000 Li.Wei@Example.COM company=Acme region=上海')
    reply = alice.last[0]
    assert reply.title == "#1 李伟"
    fields = {f.label: f.value for f in reply.fields}
    assert fields["Phone"] == "+8613800138000"
    assert fields["E-mail"] == "li.wei@example.com"
    assert fields["Company"] == "Acme"
    assert "Missing: Title, Industry, Source" in reply.text
    assert [b.label for b in reply.all_buttons()] == ["Log", "Remind", "Tag"]


async def test_add_in_chinese_for_a_chinese_speaker(bob: Chat) -> None:
    await bob.say("/add 王芳 公司=华为 电话=13900139000")
    fields = {f.label: f.value for f in bob.last[0].fields}
    assert fields["公司"] == "华为"
    assert fields["电话"] == "+8613900139000"
    assert "已添加" in bob.text


async def test_bad_input_changes_nothing_and_says_how(alice: Chat) -> None:
    for text, expected in [
        ("/add", "I'll ask one thing at a time"),
        ("/add x phone=12", "is too short for a phone number in CN"),
        ("/add x email=foo@", "isn't a valid e-mail"),
        ("/add x colour=red", "colour"),
        ("/add x birthday=1990-13-40", "YYYY-MM-DD"),
        ('/add "unclosed', "#1"),
    ]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
    assert await count_customers(alice) == 1  # only the unclosed-quote name was valid


async def test_same_phone_asks_same_person(alice: Chat) -> None:
    await alice.say("/add 李伟 13800138000 company=Acme")
    await alice.say('/add "Li Wei" 138 0013 8000')
    assert "same person" in alice.text
    await alice.press("Use existing")
    assert alice.last[0].title == "#1 李伟"
    assert await count_customers(alice) == 1

    await alice.say("/add 李伟 13800138000 title=CEO")
    await alice.press("Merge")
    assert "filled in: Title" in alice.text
    await alice.say("/add 李伟 13800138000")
    await alice.press("Add anyway")
    assert alice.last[-1].title == "#2 李伟"
    assert await count_customers(alice) == 2


async def test_fuzzy_name_at_same_company_asks(alice: Chat) -> None:
    await alice.say("/add Jonathan Smith company=Acme")
    await alice.say("/add Jonathon Smith company=ACME")
    assert "similar name at the same company" in alice.text


async def test_show_by_pinyin_initials_phone_email_number(alice: Chat) -> None:
    await alice.say("/add 李伟 13800138000 li@example.com")
    await alice.say("/add Wendy Wang")
    for ref in ("liwei", "lw", '"li wei"', "13800138000", "+86 13800138000", "LI@example.com", "#1"):
        await alice.say(f"/show {ref}")
        assert alice.last[0].title == "#1 李伟", ref
    await alice.say("/show Wendy Wang")  # an unquoted multi-word name that is exact
    assert alice.last[0].title == "#2 Wendy Wang"
    await alice.say("/show nobody-like-this")
    assert "couldn't find a customer" in alice.text


async def test_the_longest_unquoted_name_that_is_one_customer_wins(alice: Chat) -> None:
    await alice.say("/add Wang company=Acme")
    await alice.say("/add Wang Wei company=Globex")
    await alice.say("/log wang wei call: met at the fair")  # case folded; "Wang" alone is also a customer
    assert "Logged for #2 Wang Wei" in alice.text
    assert "met at the fair" in alice.text
    await alice.say("/log Wang call: a word more")
    assert "Logged for #1 Wang" in alice.text
    await alice.say("/add Wang Wei company=Initech")
    await alice.press("Add anyway") if "same person" in alice.text else None
    await alice.say("/log Wang Wei call: which?")  # two called so: ask which, not log "Wei …" for Wang
    assert "Which one?" in alice.text
    await alice.press("Initech")
    assert "Logged for #3 Wang Wei" in alice.text and "“which?”" in alice.text


async def test_one_name_close_enough_but_not_sure_is_asked_about_as_one(alice: Chat) -> None:
    """A name only like the one typed asks whether it is the one meant, not which of "several"."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/show 李卫")
    assert "Did you mean this customer by “李卫”?" in alice.text and "Several" not in alice.text
    await alice.press("#1 李伟")
    assert alice.last[-1].title.startswith("#1 李伟")


async def test_which_one_carries_on_without_retyping(alice: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/add 李伟 company=Globex")
    await alice.press("Add anyway") if "same person" in alice.text else None
    await alice.say("/edit 李伟 title=CTO")
    assert "Which one?" in alice.text
    await alice.press("Globex")
    card = alice.last[-1]
    assert card.title.startswith("#2 李伟")
    assert "Updated: Title" in card.text


async def test_edit_clears_a_field_and_is_audited(alice: Chat) -> None:
    await alice.say("/add 李伟 13800138000 company=Acme")
    await alice.say("/edit #1 company= title=CTO")
    fields = {f.label: f.value for f in alice.last[0].fields}
    assert "Company" not in fields and fields["Title"] == "CTO"
    async with alice.core.db.transaction() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "edit"))
    assert entry.before == {"company": "Acme", "title": None}
    assert entry.after == {"company": None, "title": "CTO"}


async def test_find_with_filters_and_pages(alice: Chat) -> None:
    for i in range(23):
        await alice.say(f"/add Customer{i:02d} region={'上海' if i % 2 else '北京'}")
    await alice.say("/find region:上海")
    assert "11 found" in alice.text
    await alice.say("/find region:北京")
    assert "12 found" in alice.text
    assert alice.button("Next")
    await alice.press("Next")
    assert alice.last[0].edit and "2/2" in [b.label for b in alice.last[0].all_buttons()][-1]
    await alice.say("/find owner:me tier:Z")
    assert "couldn't use the filter" in alice.text
    await alice.say("/find stage:lead")
    assert "23 found" in alice.text


async def test_tags_written_as_a_field_point_to_tag_and_change_nothing(alice: Chat, core) -> None:
    await alice.say("/add 张三 company=腾讯 tags=重点")
    assert alice.text == "Tags aren't a field: add them with /tag <customer> 重点."
    await alice.say("/find 张三")
    assert alice.text.startswith("No customers match")
    await alice.say("/add 张三")
    await alice.say("/edit 张三 tag=重点")
    assert alice.text == "Tags aren't a field: add them with /tag <customer> 重点."
    await alice.say("/show 张三")
    assert "重点" not in alice.text
    chen = Chat(core, user_id="chen", name="陈", language="zh")
    await chen.say("/add 李四 标签=重点")
    assert chen.text == "标签不是字段：请用 /tag 客户 重点 添加。"


async def test_find_filters_by_company_and_takes_key_equals_value_too(alice: Chat) -> None:
    await alice.say("/add 张三 company=腾讯")
    await alice.say("/tag 张三 重点")
    await alice.say("/add 李四 company=阿里巴巴")
    await alice.say('/add "Tom Li" company="Tencent Music"')
    for text in ("/find company:腾讯", "/find company=腾讯", "/find 公司：腾讯", "/find tag=重点", "/find 标签=重点"):
        await alice.say(text)
        assert "#1 张三" in alice.text and "李四" not in alice.text, text
    await alice.say("/find company:tencent")
    assert "#3 Tom Li" in alice.text and "张三" not in alice.text
    await alice.say('/find "company=腾讯"')  # quoted: words to look for, not a filter
    assert alice.text.startswith("No customers match")
    await alice.say("/find company=")
    assert "couldn't use the filter “company=”" in alice.text


async def test_guided_add_survives_a_restart(alice: Chat, db, services) -> None:
    from handlers.core import Core

    await alice.say("/add")
    await alice.say("张三")
    alice.core = Core(db, services)  # a new process: state lives in the database
    for _ in range(6):  # company … industry
        await alice.press("Skip")
    assert "(8/8)" in alice.text
    await alice.say("trade fair")
    assert alice.last[0].title == "#1 张三"
    fields = {f.label: f.value for f in alice.last[0].fields}
    assert fields["Source"] == "trade fair"


async def test_guided_add_reasks_a_bad_field_at_once(alice: Chat) -> None:
    await alice.say("/add")
    await alice.say("张三")
    await alice.press("Skip")
    await alice.say("CTO")
    await alice.say("tag #1")  # not a phone: asked again before going on
    assert "isn't a valid phone number" in alice.text and "(4/8) Phone?" in alice.text
    await alice.say("13800138000")
    assert "(5/8) E-mail?" in alice.text
    for _ in range(4):
        await alice.press("Skip")
    assert alice.last[0].title == "#1 张三"


async def test_guided_add_takes_command_words_as_answers_and_cancels(alice: Chat) -> None:
    await alice.say("/add")
    await alice.say("log")  # a command word without a slash is the answer, not a command
    assert "(2/8)" in alice.text
    await alice.say("/cancel")
    assert "Cancelled" in alice.text
    await alice.say("Acme")  # the flow is gone: plain text is no longer an answer
    assert "don't know the command" in alice.text
    assert await count_customers(alice) == 0


async def test_a_guided_button_pressed_twice_acts_once(alice: Chat) -> None:
    await alice.say("/add")
    await alice.say("张三")
    question = alice.last  # (2/8) Company?
    await alice.press("Skip", question)
    assert "(3/8) Title?" in alice.text
    await alice.press("Skip", question)  # a double tap: the same button again
    assert alice.text == "That button belongs to an earlier question, so nothing changed. Now: (3/8) Title?"
    assert alice.last[0].private and not alice.last[0].buttons
    await alice.say("CTO")  # the title is still asked for
    assert "(4/8) Phone?" in alice.text
    await alice.press("Cancel", question)  # Cancel of an earlier question still ends the form
    assert "Cancelled" in alice.text
    await alice.press("Skip", question)
    assert "That button has expired" in alice.text
    assert await count_customers(alice) == 0


async def test_a_guided_button_of_another_form_does_not_answer_this_one(alice: Chat) -> None:
    await alice.say("/add 李伟")
    await alice.say("/add")
    await alice.say("张三")
    adding = alice.last  # (2/8) Company? with Skip
    await alice.say("/show 李伟")
    logging = await alice.press("Log")  # the /add form is dropped, the log form asks its first question
    assert "(1/3) Channel?" in alice.text
    await alice.press("Skip", adding)
    assert "belongs to an earlier question" in alice.text and "(1/3) Channel?" in alice.text
    await alice.press("Cancel", adding)
    assert "belongs to an earlier question" in alice.text
    for old in ("gskip", "gcancel", "gopt:0", "gopt:x:y:z", "gskip:1:99999999999999"):  # payloads of older releases
        await alice.send(alice.request(action=old))
        assert "belongs to an earlier question" in alice.text, old
    await alice.press("visit", logging)  # the log form is still at its first question
    assert "(2/3) What happened?" in alice.text
    assert await count_customers(alice) == 1


async def test_a_guided_question_in_a_group_says_to_reply_to_it(core) -> None:
    erin = Chat(core, user_id="erin", name="Erin", platform="telegram", space="-100777", chat_id="-100777",
                private=False)
    await erin.say("/add")
    assert "(1/8) Name? (reply to this message)\n" in erin.text
    await erin.say("张三")
    assert "(2/8) Company? (reply to this message)" in erin.text
    await erin.press("Skip")
    await erin.say("/cancel")
    chen = Chat(core, user_id="chen", name="陈", language="zh", platform="telegram", space="-100777",
                chat_id="-100777", private=False)
    await chen.say("/add")
    assert "（1/8）姓名？（请回复这条消息）" in chen.text
    dm = Chat(core, user_id="erin", name="Erin", platform="telegram", space=None)
    await dm.say("/add")
    assert "(1/8) Name?" in dm.text and "reply to this message" not in dm.text


async def test_the_card_shortens_long_interaction_notes(alice: Chat) -> None:
    await alice.say("/add Tom")
    await alice.say("/log #1 call: short and sweet")
    long_note = "\n".join(f"line {i} " + "x" * 90 for i in range(20))[:1900]
    for _ in range(5):
        await alice.say(f"/log #1 note: {long_note}")
    await alice.say("/show #1")
    [card] = alice.last
    assert len(card.items) == 5 and all(item.endswith("…") and "\n" not in item for item in card.items)
    summary = card.items[0].split(": ", 1)[1]
    assert summary == " ".join(long_note.split())[:CARD_SUMMARY_CHARS - 1] + "…"
    assert len(card.plain_text()) < 4096  # one Telegram message
    async with alice.core.db.transaction() as session:  # only the card is short: the notes are kept whole
        assert set(await session.scalars(select(func.length(Interaction.summary)))) == {15, len(long_note)}
    await alice.say("/log #1 visit: brief")
    await alice.say("/show #1")
    assert alice.last[0].items[0].endswith("visit · Alice: brief")


async def test_phone_reference_does_not_swallow_the_next_number(alice: Chat) -> None:
    await alice.say("/add 李伟 138 0013 8000")
    await alice.say("/deal 13800138000 12000")
    assert "12,000" in alice.text
    await alice.say("/deal +86 138 0013 8000 300")
    assert "¥300" in alice.text


async def test_a_forgotten_closing_quote_does_not_swallow_the_phone(alice: Chat) -> None:
    await alice.say('/add "Li Wei 13800138000')
    assert alice.last[0].title == "#1 Li Wei"
    assert "+8613800138000" in alice.text
    await alice.say('/add "Li Wei" 13900139000 company=Other')
    await alice.say('/show "Li Wei"')
    assert "Several customers match “Li Wei”. Which one?" in alice.text



async def test_an_unquoted_value_with_spaces_is_explained(alice: Chat) -> None:
    await alice.say("/add Kim")
    await alice.say("/edit Kim prefs=likes green tea")
    assert alice.text == 'A value with spaces needs quotes, e.g. /edit #12 prefs="likes green tea".'
    await alice.say('/edit Kim prefs="likes green tea"')
    assert "likes green tea" in alice.text


async def test_find_looks_up_phones_emails_and_numbers_within_the_scope(core, alice: Chat) -> None:
    from tests.test_security import set_visibility

    await alice.say("/add 王芳 13912345678 wang@acme.cn company=华为")
    await alice.say("/add 李伟 13800138000")
    for text in ("/find 13912345678", "/find +86 139 1234 5678", "/find wang@acme.cn", "/find #1", "/find 5678",
                 "/find ＃１", "/find 1234 5678"):
        await alice.say(text)
        assert "1 found" in alice.text and "#1 王芳" in alice.text and "李伟" not in alice.text, (text, alice.text)
    await alice.say("/find #2")
    assert "#2 李伟" in alice.text and "王芳" not in alice.text
    await alice.say("/find 567")  # fewer than 4 digits: not a phone search
    assert "王芳" not in alice.text
    await set_visibility(alice, "own")
    eve = Chat(core, user_id="eve", name="Eve")
    for text in ("/find 13912345678", "/find wang@acme.cn", "/find #1", "/find 5678"):
        await eve.say(text)
        assert eve.text.startswith("No customers match") and "王芳" not in eve.text, (text, eve.text)
    await eve.say("/find 王芳")  # by name: the search's ids, narrowed to the rep's own (Scope.among)
    assert eve.text == "No customers match “王芳”.", eve.text
    await alice.say("/find 王芳")
    assert "#1 王芳" in alice.text


async def test_text_fields_keep_the_full_width_punctuation_typed(bob: Chat) -> None:
    """Issue 15 item 6: a registered Chinese company name keeps its （）; matching still folds widths."""
    await bob.say("/add 王芳 公司=华东贸易（上海）有限公司 地址=上海市浦东新区，张江路1号 偏好=喜欢喝茶，不要周一打电话")
    fields = {f.label: f.value for f in bob.last[0].fields}
    assert fields["公司"] == "华东贸易（上海）有限公司"
    assert fields["地址"] == "上海市浦东新区，张江路1号"
    async with bob.core.db.transaction() as session:
        customer = await session.scalar(select(Customer))
    assert customer.prefs == "喜欢喝茶，不要周一打电话"
    await bob.say("/add 王方 公司=华东贸易(上海)有限公司")  # half-width brackets: the same company
    assert "同一个人" in bob.text
    await bob.press("仍然添加")
    await bob.say("/find 公司:华东贸易(上海)")
    assert "王芳" in bob.text and "王方" in bob.text
    await bob.say("/dupes")
    assert "#1 王芳" in bob.text and "#2 王方" in bob.text


async def test_edit_names_only_the_fields_that_changed(alice: Chat) -> None:
    """Issue 15 item 8: "Updated" is said of changed fields; the unchanged ones are named as such."""
    await alice.say("/add Bob Lee company=Acme title=CTO")
    await alice.say("/edit Bob company=Acme title=CEO")
    assert "Updated: Title." in alice.text
    assert "Nothing changed: Company already had those values." in alice.text
    await alice.say("/edit Bob title=CEO")
    assert "Updated" not in alice.text and "Nothing changed: Title" in alice.text


async def test_merge_on_same_person_keeps_the_new_name_and_says_so(bob: Chat) -> None:
    """Issue 15 item 8: Merge keeps what differs (the name as the rep heard it) in the preferences."""
    await bob.say("/add 王芳 13900139000 公司=华为")
    await bob.say("/add 王方 13900139000 职位=经理")
    assert "同一个人" in bob.text
    await bob.press("合并")
    assert "补充了：职位" in bob.text
    assert "姓名 王方" in bob.text
    async with bob.core.db.transaction() as session:
        customer = await session.scalar(select(Customer))
    assert customer.name == "王芳" and customer.title == "经理"
    assert "王方" in customer.prefs
    assert await count_customers(bob) == 1
