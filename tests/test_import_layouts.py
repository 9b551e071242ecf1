"""Every layout the import reads, as the tool a team leaves writes it (tests/fixtures/layouts/, built
from each tool's documented export: tests/fixtures/README.md). Each lands whole: full names, phones,
e-mails, companies and owners where the file has them; what fits no field is in the notes."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from handlers.messages import Attachment
from storage.models import Customer, CustomerTag, Member
from tests.chat import Chat

LAYOUTS = Path(__file__).with_name("fixtures") / "layouts"


async def imported(chat: Chat, name: str, *, press: str | None = None) -> dict[str, Customer]:
    await chat.say("/import", file=Attachment(name, (LAYOUTS / name).read_bytes()))
    if press:
        await chat.press(press)
    async with chat.core.db.transaction() as session:
        return {c.name: c for c in await session.scalars(select(Customer).order_by(Customer.number))}


async def owners(chat: Chat) -> dict[int, str]:
    async with chat.core.db.transaction() as session:
        return dict((await session.execute(select(Member.id, Member.name))).all())


async def tags(chat: Chat, customer: Customer) -> set[str]:
    async with chat.core.db.transaction() as session:
        return set(await session.scalars(select(CustomerTag.name).where(
            CustomerTag.customer_id == customer.id, CustomerTag.auto.is_(False))))


@pytest.fixture
async def team(alice: Chat, bob: Chat, core) -> tuple[Chat, Chat, Chat]:  # type: ignore[no-untyped-def]
    """Alice (admin), Bob and 王芳 (reps): the owners the files name."""
    wang = Chat(core, user_id="wangfang", name="王芳", language="zh")
    for chat in (alice, bob, wang):
        await chat.say("/help")
    return alice, bob, wang


async def test_google_contacts_current_export(alice: Chat) -> None:
    book = await imported(alice, "google-contacts.csv")
    assert "Rows read: 4. Added: 4;" in alice.text
    anna = book["Anna Schmidt"]
    assert (anna.company, anna.title, anna.phone, anna.email, anna.region) == (
        "Berlin GmbH", "Einkaufsleiterin", "+4915123456789", "anna.schmidt@berlin-gmbh.de", "Berlin")
    assert anna.address == "Alexanderplatz 1 10178 Berlin DE" and anna.birthday.isoformat() == "1980-02-29"
    assert anna.prefs.startswith("Met at the Canton Fair,\nprefers e-mail\n")  # line breaks kept
    for kept in ("Phone 1 (Mobile): +49 30 1234567", "Phone 2 (Work): +49 30 7654321",
                 "E-mail 2 (Home): anna@example.de", "Organization Department: Einkauf"):
        assert kept in anna.prefs  # the second phone of a `:::` cell, the other columns' values
    assert await tags(alice, anna) == {"customers", "vip-imported"}  # * myContacts is Google's own group
    assert "VIP → #vip-imported" in alice.text
    li = book["李伟"]  # First Name 伟, Last Name 李
    assert (li.company, li.title, li.phone) == ("华东贸易", "采购经理", "+8613800138000")
    assert "John Q. Smith Jr." in book and "Nickname: Johnny" in book["John Q. Smith Jr."].prefs
    assert book["+8613900139000"].phone == "+8613900139000"  # a contact with only a number is kept
    assert "Rows without a name, named after their: 8 (Phone)." in alice.text


async def test_google_contacts_legacy_utf16_export(alice: Chat) -> None:
    book = await imported(alice, "google-contacts-legacy.csv")
    assert "Rows read: 2. Added: 2;" in alice.text
    wang, jean = book["王芳"], book["Jean Dupont"]
    assert (wang.phone, wang.email, wang.company, wang.title, wang.gender) == (
        "+8613900139000", "wang.fang@example.cn", "上海科技", "市场总监", "female")
    assert "Phone 2 (Work): 021 6123 4567" in wang.prefs
    assert (jean.phone, jean.company, jean.title) == ("+33612345678", "Café Crème SARL", "Gérant")


async def test_outlook_export_in_windows_1252(alice: Chat) -> None:
    book = await imported(alice, "outlook.csv")
    jurgen = book["Jürgen Müller"]  # read as Windows-1252, not garbled
    assert (jurgen.company, jurgen.title, jurgen.phone, jurgen.gender) == (
        "Bäckerei Groß GmbH", "Geschäftsführer", "+49891234567", "male")  # Title Herr is the honorific
    assert jurgen.address == "Hauptstraße 5, 80331 München, Deutschland"
    assert jurgen.birthday.isoformat() == "1970-12-31" and "Mobile Phone: +49 171 2345678" in jurgen.prefs
    assert await tags(alice, jurgen) == {"kunden", "grosshandel"}  # casefolded, as every tag is
    assert book["Françoise Lefèvre"].gender == "female"


@pytest.mark.parametrize("name", ["outlook-chinese-windows-gbk.csv", "outlook-chinese-headers-gbk.csv"])
async def test_outlook_saved_on_chinese_windows(bob: Chat, name: str) -> None:
    book = await imported(bob, name)
    assert "共 2 行：新增 2" in bob.text
    li, wang = book["李伟"], book["王芳"]
    assert (li.company, li.title, li.email, li.gender) == ("华东贸易有限公司", "采购经理", "li.wei@huadong.cn", "male")
    assert wang.gender == "female"  # 先生 / 女士 as the honorific
    assert {li.phone, wang.phone} >= {"+8613900139000"} and li.phone in ("+862161234567;ext=801", "+862161234567")
    assert "13800138000" in li.prefs and "喜欢下午联系" in li.prefs


async def test_hubspot_export_with_owners(team: tuple[Chat, Chat, Chat]) -> None:
    alice, _, _ = team
    book = await imported(alice, "hubspot-contacts.csv")
    members = await owners(alice)
    ada, grace, chen = book["Ada Lovelace"], book["Grace Hopper"], book["陈明"]
    assert (ada.company, ada.title, ada.phone, ada.email, members[ada.owner_id]) == (
        "Analytical Engines Ltd", "Director", "+442079460018", "ada@analytical.example", "Alice")
    assert grace.phone == "+12125550100" and chen.phone == "+8613800138001" and chen.company == "华南电子"
    assert "Lifecycle Stage: Customer" in ada.prefs
    assert "Owners that match no member of this book" in alice.text
    assert "“ines.moreau@old-agency.example” (lines 3)" in alice.text


async def test_zoho_contacts_export(team: tuple[Chat, Chat, Chat]) -> None:
    alice, _, _ = team
    book = await imported(alice, "Contacts_001.csv")
    members = await owners(alice)
    priya, tom = book["Priya Sharma"], book["Tom Baker"]
    assert (priya.company, priya.title, priya.phone, priya.email, priya.source, priya.gender) == (
        "Zylker Corp", "Purchasing Manager", "+918045678901", "priya@zylker.example", "Trade Show", "female")
    assert priya.birthday.isoformat() == "1990-04-15" and priya.region == "Bengaluru"
    assert "Mobile: +91 98450 12345" in priya.prefs and "Secondary Email: priya.sharma@example.in" in priya.prefs
    assert await tags(alice, priya) == {"hot", "quote-sent"}
    assert (members[priya.owner_id], members[tom.owner_id]) == ("Alice", "Bob")
    assert tom.phone == "+13125550142"


@pytest.mark.parametrize("name", ["pipedrive-people.csv", "pipedrive-people-old.csv"])
async def test_pipedrive_people_export(team: tuple[Chat, Chat, Chat], name: str) -> None:
    alice, _, _ = team
    book = await imported(alice, name)
    members = await owners(alice)
    assert "Rows read: 2. Added: 2;" in alice.text
    first, second = list(book.values())
    assert members[first.owner_id] == "Alice" and members[second.owner_id] == "Bob"
    if name == "pipedrive-people.csv":
        assert (first.name, first.company, first.phone, first.email) == (
            "Sofia Rossi", "Rossi Trasporti", "+390212345678", "sofia@rossi.example")
        assert "+39 333 123 4567" in first.prefs and second.name == "王小明"
    else:  # the older layout: several values in one cell
        assert (first.name, first.phone, first.email) == ("Lars Nilsson", "+46812345678", "lars@nordic.example")
        assert "+46 70 123 45 67" in first.prefs and "lars.nilsson@example.se" in first.prefs
        assert second.phone == "+8613700137000" and "021-6123 4599" in second.prefs


async def test_salesforce_contact_export(alice: Chat) -> None:
    book = await imported(alice, "salesforce-Contact.csv")
    yuki, sean = book["Yuki Tanaka"], book["Sean O'Neil"]
    assert (yuki.phone, yuki.title, yuki.source, yuki.gender) == ("+81312345678", "Buyer", "Partner Referral", "female")
    assert "MobilePhone: +81 90-1234-5678" in yuki.prefs  # MobilePhone read
    assert sean.phone == "+353871234567" and "HomePhone: +353 1 234 5678" in sean.prefs
    assert "“0055g00000OwnEr1AAA” (lines 2, 3)" in alice.text  # an owner id nobody here has


async def test_vcard_file_and_vcard_converted_to_csv(alice: Chat) -> None:
    book = await imported(alice, "contacts.vcf")
    assert "Rows read: 3. Added: 3;" in alice.text
    anna, li, kim = book["Dr. Anna Schmidt"], book["李伟"], book["Kim Min-jun"]
    assert (anna.company, anna.title, anna.phone, anna.email) == (
        "Berlin GmbH", "Einkaufsleiterin", "+4915123456789", "anna.schmidt@berlin-gmbh.de")
    assert li.phone == "+8613800138000" and "021-61234567" in li.prefs  # a vCard 2.1 card in quoted-printable
    assert kim.phone == "+821012345678" and await tags(alice, kim) == {"seoul", "partner"}
    book = await imported(alice, "vcard-converted.csv")  # N's parts as columns: Name is the family name
    assert "line 2 Anna Schmidt → #1 Dr. Anna Schmidt (same phone)" in alice.text
    assert "line 3 李伟 → #2 李伟 (same e-mail)" in alice.text
    assert len(book) == 3


async def test_wecom_customer_export(team: tuple[Chat, Chat, Chat]) -> None:
    _, bob, _ = team
    book = await imported(bob, "wecom-customers.xlsx")
    members = await owners(bob)
    zhang, wang = book["张总-华东贸易"], book["王芳"]  # 客户备注名 is the name; the WeChat name goes to the notes
    assert (zhang.phone, zhang.gender, zhang.source, members[zhang.owner_id]) == (
        "+8613812345678", "male", "扫描二维码", "Alice")
    assert zhang.prefs == "要发三家比价单\n客户名称: Tony\n添加时间: 2024-03-01 09:30"
    assert await tags(bob, zhang) == {"重点客户", "已报价"}
    assert (wang.phone, members[wang.owner_id]) == ("+8613987654321", "Bob")
    assert "Kevin Lee" in book and "“someone-left”" in bob.text


@pytest.mark.parametrize("name", ["ledger.xlsx", "ledger.xls"])
async def test_chinese_excel_ledger_with_a_title_row(team: tuple[Chat, Chat, Chat], name: str) -> None:
    _, bob, _ = team
    await bob.say("/import", file=Attachment(name, (LAYOUTS / name).read_bytes()))
    preview = bob.last[0]
    assert "姓名 ← 联系人 · 公司 ← 客户名称 · 电话 ← 手机号码 + 联系电话" in preview.text
    assert "以下列我不认识，除非你修改，否则不导入：工号 (“A-017”)。" in preview.text
    book = await imported(bob, name, press="导入")
    members = await owners(bob)
    li, chen, zhao = book["李伟"], book["陈明"], book["赵敏"]
    assert (li.company, li.phone, li.region, li.source, members[li.owner_id]) == (
        "华东贸易（上海）有限公司", "+8613800138000", "上海", "展会", "Alice")  # brackets as typed
    assert li.prefs == "喜欢下午联系\n联系电话: 021-61234567\n最后跟进时间: 2024-05-06 14:30"
    assert members[chen.owner_id] == "王芳" and chen.phone == "+8613900139000"  # a number cell, not 1.39E+10
    assert "010-88881234转5" in zhao.prefs and "“Nobody”（第 5 行）" in bob.text
    assert "未导入的列：工号。" in bob.text


async def test_cells_that_used_to_cost_the_row(bob: Chat) -> None:
    book = await imported(bob, "messy-cells.csv")
    assert "共 19 行：新增 19，合并到已有客户 0，未导入 0。" in bob.text  # 19 of 19 land
    assert book["李伟"].phone == "+8613800138000" and book["李伟"].prefs == "手机: （微信同号）"
    assert book["王芳"].phone == "+862161234567"  # 暂无 is an empty cell
    assert book["刘洋"].phone == "+8613900139000" and book["刘洋"].prefs == "手机: 13700137000"
    assert book["陈静"].prefs == "电话: 转8" and "第 6 行：电话“转8”：只有分机号" in bob.text
    assert book["杨磊"].phone == "+862161234567;ext=801"
    assert book["赵敏"].phone is None and "已被 Excel 截断" in bob.text
    assert book["Mary Jones"].phone is None and book["Mary Jones"].birthday.isoformat() == "1980-12-31"
    assert "第 9 行：电话“(415) 555-2671”：不是CN的号码" in bob.text  # never read as +86 415 …
    assert book["黄强"].prefs == "生日: 1988年5月" and "日期缺少具体哪一天" in bob.text
    assert len(book["周杰"].prefs) == 2100
    assert book["胡军"].prefs == "第一行\n第二行，全角逗号"  # line breaks and full-width commas kept
    assert book["郭静"].phone == "+8613100131000" and "13000130000" in book["郭静"].prefs
    assert "第 16 行：生日“05/03/1988”：无法确定是日在前还是月在前" in bob.text
    for name, typed in (("孙悦", "12345"), ("马超", "123abc"), ("何平", "1-800-FLOWERS")):
        assert book[name].phone is None and typed in book[name].prefs  # never keypad digits


@pytest.mark.parametrize("name, who, company", [
    ("western-european-cp1252.csv", "Jürgen Müller", "Bäckerei Groß GmbH"),
    ("japanese-shift-jis.csv", "山田太郎", "株式会社サンプル"),
])
async def test_encodings_are_read_right(alice: Chat, name: str, who: str, company: str) -> None:
    book = await imported(alice, name)
    assert book[who].company == company
    # in a CN book a number without its country code is no Chinese number: kept as typed
    assert book[who].phone is None and "not a number of CN" in alice.text


async def test_in_the_right_region_the_same_numbers_are_phones(alice: Chat) -> None:
    await alice.say("/settings region=DE")
    book = await imported(alice, "western-european-cp1252.csv")
    assert book["Jürgen Müller"].phone == "+49891234567"


async def test_an_owner_named_by_pinyin_or_email_is_found(team: tuple[Chat, Chat, Chat]) -> None:
    alice, _, _ = team
    book_file = "name,phone,owner\nA,13800138001,Wang Fang\nB,13800138002,alice@example.com\nC,13800138003,王芳\n"
    await alice.say("/import", file=Attachment("o.csv", book_file.encode()))
    members = await owners(alice)
    async with alice.core.db.transaction() as session:
        found = {c.name: members[c.owner_id] for c in await session.scalars(select(Customer))}
    assert found == {"A": "王芳", "B": "Alice", "C": "王芳"}
    assert "Owners that match no member" not in alice.text


async def test_a_rep_under_visibility_own_gets_the_customers_the_file_gives_them(team: tuple[Chat, Chat, Chat]) -> None:
    alice, bob, _ = team
    async with alice.core.db.transaction() as session:
        from storage.models import Workspace
        await session.execute(update(Workspace).values(visibility="own"))
    await imported(alice, "Contacts_001.csv")
    await bob.say("/find tom")
    assert "Tom Baker" in bob.text
