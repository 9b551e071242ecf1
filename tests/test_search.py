"""The in-memory fuzzy + pinyin customer search (storage.search)."""
from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from storage.db import Database
from storage.models import Customer, Member, Workspace
from storage.search import CustomerSearch, Match, NameIndex

BOOK = {
    1: ("李伟", "阿里巴巴"),
    2: ("刘伟", None),
    3: ("陆文", "Acme Corp"),
    4: ("张三", None),
    5: ("张伟", "Globex Ltd"),
    6: ("王芳 Wendy", "Acme Corp"),
    7: ("John Smith", "Acme Corp"),
    8: ("Johnny Walker", None),
    9: ("曾小明", None),
    10: ("Sarah O'Brien", "Initech"),
}


@pytest.fixture
def index() -> NameIndex:
    built = NameIndex()
    for customer_id, (name, company) in BOOK.items():
        built.upsert(customer_id, name, company)
    return built


def ids(matches: list[Match]) -> list[int]:
    return [m.customer_id for m in matches]


def top(index: NameIndex, query: str) -> Match:
    return index.search(query)[0]


def is_clear_winner(matches: list[Match]) -> bool:
    """The callers' rule: top ≥ 90 and ≥ 10 ahead of the second."""
    if not matches or matches[0].score < 90:
        return False
    return len(matches) == 1 or matches[0].score - matches[1].score >= 10


# ---------------------------------------------------------------- NameIndex


def test_exact_name_scores_100_and_is_a_clear_winner(index: NameIndex) -> None:
    matches = index.search("李伟")
    assert matches[0] == Match(1, 100.0)
    assert is_clear_winner(matches)


@pytest.mark.parametrize("query", ["liwei", "li wei", "Li Wei", "LIWEI", "ｌｉ　ｗｅｉ"])
def test_pinyin_full_and_spaced_find_the_chinese_name(index: NameIndex, query: str) -> None:
    matches = index.search(query)
    assert matches[0] == Match(1, 95.0)
    assert is_clear_winner(matches)


def test_initials_shared_by_several_names_give_no_clear_winner(index: NameIndex) -> None:
    matches = index.search("lw")
    assert {m.customer_id for m in matches[:3]} == {1, 2, 3}  # 李伟, 刘伟, 陆文
    assert {m.score for m in matches[:3]} == {95.0}
    assert not is_clear_winner(matches)


def test_unique_initials_find_the_name(index: NameIndex) -> None:
    assert top(index, "zs") == Match(4, 95.0)


def test_latin_name_is_case_width_and_spacing_insensitive(index: NameIndex) -> None:
    for query in ("john smith", "JOHN SMITH", "Ｊｏｈｎ　Ｓｍｉｔｈ", "johnsmith", "sarah obrien"):
        assert top(index, query).score == 100.0, query


def test_accents_are_folded() -> None:
    index = NameIndex()
    index.upsert(1, "José Müller", None)
    assert top(index, "jose muller") == Match(1, 100.0)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("liwie", 1),
        ("Zhang Sna", 4),
        ("jhon smith", 7),
        ("Jonh Smith", 7),
        ("johm smith", 7),
        ("sarha o'brien", 10),
    ],
)
def test_typos_still_find_the_customer_first(index: NameIndex, query: str, expected: int) -> None:
    matches = index.search(query)
    assert matches[0].customer_id == expected
    assert not is_clear_winner(matches)  # a guess is confirmed, never assumed


def test_exact_pinyin_beats_fuzzy_neighbours(index: NameIndex) -> None:
    matches = index.search("zhang san")
    assert matches[0] == Match(4, 95.0)
    assert is_clear_winner(matches)


def test_prefix_ranks_above_fuzzy_and_below_exact(index: NameIndex) -> None:
    matches = index.search("john")
    assert ids(matches[:2]) == [7, 8]  # the word "john" beats the prefix of "johnny walker"
    assert matches[0].score > matches[1].score > 75


def test_company_search_finds_everyone_there_below_name_matches(index: NameIndex) -> None:
    matches = index.search("acme")
    assert set(ids(matches)) >= {3, 6, 7}
    assert len({m.score for m in matches if m.customer_id in (3, 6, 7)}) == 1
    assert index.search("acme corp")[0].score < 100


def test_chinese_company_by_characters_and_pinyin(index: NameIndex) -> None:
    assert top(index, "阿里巴巴").customer_id == 1
    assert top(index, "alibaba").customer_id == 1


def test_mixed_name_by_either_part(index: NameIndex) -> None:
    assert top(index, "王芳 Wendy") == Match(6, 100.0)
    for query in ("王芳", "wendy", "wang fang", "wangfangwendy"):
        assert top(index, query).customer_id == 6, query


def test_polyphonic_surname_by_everyday_and_surname_reading(index: NameIndex) -> None:
    for query in ("zeng xiao ming", "cengxiaoming", "zxm", "cxm"):
        assert top(index, query) == Match(9, 95.0), query


def test_homophone_characters_rank_below_the_real_characters(index: NameIndex) -> None:
    matches = index.search("李为")
    assert matches[0].customer_id == 1
    assert 80 <= matches[0].score < 95


def test_same_name_twice_ties_and_is_not_a_clear_winner(index: NameIndex) -> None:
    index.upsert(11, "李伟", "Umbrella")
    matches = index.search("李伟")
    assert matches[:2] == [Match(1, 100.0), Match(11, 100.0)]
    assert not is_clear_winner(matches)


def test_upsert_renames(index: NameIndex) -> None:
    index.upsert(4, "张三丰", None)
    assert len(index) == len(BOOK)
    assert top(index, "张三丰") == Match(4, 100.0)
    assert 4 not in [m.customer_id for m in index.search("张三") if m.score == 100.0]
    index.upsert(7, "John Smith", "Hooli")  # company change only
    assert 7 in ids(index.search("hooli"))
    assert 7 not in ids(index.search("acme"))


def test_remove(index: NameIndex) -> None:
    index.remove(1)
    index.remove(999)  # unknown: nothing happens
    assert len(index) == len(BOOK) - 1
    assert 1 not in ids(index.search("李伟"))
    assert 1 not in ids(index.search("alibaba"))


def test_removing_everything_leaves_nothing_behind(index: NameIndex) -> None:
    for customer_id in BOOK:
        index.upsert(customer_id, BOOK[customer_id][0] + "x", "Renamed Co")
        index.remove(customer_id)
    assert len(index) == 0
    assert index.search("li") == []
    assert not index._string_ids and not index._postings  # no keys leak through renames


def test_swapped_letters_find_the_name_before_names_a_different_letter_away() -> None:
    """`xaifei` is 夏飞 (xiafei) typed fast; 白飞 (baifei) and a dozen others are one letter away too."""
    built = NameIndex()
    for customer_id, surname in enumerate("白戴蔡麦来海太赛凯派外再", start=1):
        built.upsert(customer_id, f"{surname}飞", None)
    built.upsert(50, "夏飞", None)
    built.upsert(51, "Jonathan Price", None)
    assert top(built, "xaifei").customer_id == 50
    assert top(built, "jonatahnprice").customer_id == 51


def test_a_company_of_thousands_gives_its_oldest_customers_in_order() -> None:
    """Ties rank by id; a long owner list is cut to the oldest before ranking, never to any others."""
    built = NameIndex()
    staff = list(range(100, 3100))
    random.Random(3).shuffle(staff)  # the owner list is in no order
    for customer_id in staff:
        built.upsert(customer_id, f"Person {customer_id}", "Megacorp LLC")
    built.upsert(50, "Megacorp Buyer", None)  # a name match ranks above everyone at the company
    built.remove(100)
    assert ids(built.search("megacorp")) == [50, *range(101, 110)]
    assert ids(built.search("llc", limit=3)) == [101, 102, 103]


def test_fuzzy_matches_see_keys_added_renamed_and_removed_after_the_first_search(index: NameIndex) -> None:
    assert top(index, "Jonh Smith").customer_id == 7  # the first search readies the fuzzy pool
    index.remove(10)  # its key strings' ids are free for the next ones
    assert 10 not in ids(index.search("Sarah OBrian"))
    index.upsert(21, "Bartholomew Quigley", None)
    index.upsert(8, "Cornelius Fairweather", None)  # a rename
    # slips in the middle of the key: found by the fuzzy ranking alone, not as a prefix
    assert top(index, "Bartholmew Quigley").customer_id == 21
    assert top(index, "Cornelus Fairweather").customer_id == 8
    assert 8 not in ids(index.search("Johnny Walkr"))
    for new in range(22, 2_100):  # enough new key strings to outgrow what the searches readied
        index.upsert(new, f"Filler {new:05d}", None)
    assert top(index, "Filer 02099").customer_id == 2099
    assert top(index, "Bartholmew Quigley").customer_id == 21


def test_limit(index: NameIndex) -> None:
    assert len(index.search("lw", limit=2)) == 2
    assert index.search("lw", limit=0) == []


@pytest.mark.parametrize(
    "query",
    ["", "   ", "🙂🙂", "\x00", "'; DROP TABLE customers; --", "<b>x</b>", '"unterminated', "李" * 10_000, "a" * 10_000],
)
def test_garbage_queries_never_raise(index: NameIndex, query: str) -> None:
    matches = index.search(query)
    assert all(0 <= m.score <= 100 for m in matches)


def test_empty_index() -> None:
    assert NameIndex().search("anything") == []


@settings(max_examples=300, deadline=None)
@given(query=st.text(max_size=300), limit=st.integers(min_value=-1, max_value=20))
def test_search_never_raises(query: str, limit: int) -> None:
    index = NameIndex()
    for customer_id, (name, company) in BOOK.items():
        index.upsert(customer_id, name, company)
    matches = index.search(query, limit)
    assert len(matches) <= max(limit, 0)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert all(0 <= m.score <= 100 for m in matches)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=60), company=st.none() | st.text(max_size=60))
def test_any_name_can_be_indexed_found_and_removed(name: str, company: str | None) -> None:
    index = NameIndex()
    index.upsert(1, name, company)
    if name.strip():
        index.search(name)
    index.remove(1)
    assert not index._string_ids and not index._postings


# ---------------------------------------------------------------- CustomerSearch


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/t.db")
    await database.upgrade()
    yield database
    await database.dispose()


async def add_workspace(db: Database, at: datetime) -> tuple[int, int]:
    async with db.transaction() as session:
        workspace = Workspace(
            name="team", created_at=at, timezone="Asia/Shanghai", locale="zh", currency="CNY", phone_region="CN"
        )
        session.add(workspace)
        await session.flush()
        member = Member(workspace_id=workspace.id, name="rep", role="admin", created_at=at)
        session.add(member)
        await session.flush()
        return workspace.id, member.id


async def add_customer(
    db: Database, workspace_id: int, owner_id: int, number: int, name: str, at: datetime, company: str | None = None
) -> int:
    async with db.transaction() as session:
        customer = Customer(
            workspace_id=workspace_id,
            number=number,
            owner_id=owner_id,
            name=name,
            company=company,
            created_at=at,
            updated_at=at,
        )
        session.add(customer)
        await session.flush()
        return customer.id


async def test_customer_search_loads_syncs_and_keeps_workspaces_apart(db: Database) -> None:
    clock = Clock()
    ws, rep = await add_workspace(db, clock())
    other_ws, other_rep = await add_workspace(db, clock())
    li_wei = await add_customer(db, ws, rep, 1, "李伟", clock(), "Acme")
    zhang = await add_customer(db, ws, rep, 2, "张三", clock())
    gone = await add_customer(db, ws, rep, 3, "Deleted Person", clock())
    async with db.transaction() as session:
        await session.execute(update(Customer).where(Customer.id == gone).values(deleted_at=clock()))
    stranger = await add_customer(db, other_ws, other_rep, 1, "李伟", clock())

    search = CustomerSearch(clock, sync_interval=3600)
    search.note_saved(ws, 999, "Never Loaded", None)  # workspace not loaded yet: ignored
    async with db.sessions() as session:
        assert ids(await search.search(session, ws, "liwei")) == [li_wei]
        assert await search.search(session, ws, "deleted person") == []
        assert ids(await search.search(session, other_ws, "李伟")) == [stranger]
        assert await search.search(session, ws, "never loaded") == []

    # In-process writes show up at once.
    wendy = await add_customer(db, ws, rep, 4, "王芳 Wendy", clock())
    search.note_saved(ws, wendy, "王芳 Wendy", None)
    search.note_removed(ws, zhang)
    async with db.sessions() as session:
        assert ids(await search.search(session, ws, "wendy")) == [wendy]
        assert await search.search(session, ws, "zhang san") == []

        # Another process renames a customer: invisible until the sync interval passes.
        clock.now += timedelta(minutes=5)
        rename = update(Customer).where(Customer.id == li_wei).values(name="李维新", updated_at=clock())
        await session.execute(rename)
        await session.commit()
        assert all(m.score < 100 for m in await search.search(session, ws, "李维新"))

    search._sync_interval = 0  # the interval has passed
    async with db.sessions() as session:
        assert (await search.search(session, ws, "李维新"))[0] == Match(li_wei, 100.0)
        assert all(m.score < 100 for m in await search.search(session, ws, "李伟"))
        assert ids(await search.search(session, other_ws, "李伟")) == [stranger]


async def test_incremental_sync_sees_changes_from_behind_its_back(db: Database) -> None:
    clock = Clock()
    ws, rep = await add_workspace(db, clock())
    kept = await add_customer(db, ws, rep, 1, "Alice Chen", clock())
    dropped = await add_customer(db, ws, rep, 2, "Bob Stone", clock())
    search = CustomerSearch(clock, sync_interval=0)
    async with db.sessions() as session:
        assert ids(await search.search(session, ws, "alice chen")) == [kept]

    # Other processes add, delete and rename, with clocks up to the margin behind ours.
    clock.now += timedelta(minutes=1)
    late_writer = clock() - timedelta(seconds=30)
    added = await add_customer(db, ws, rep, 3, "Carol Diaz", late_writer)
    async with db.transaction() as session:
        changed = update(Customer).values(updated_at=late_writer)
        await session.execute(changed.where(Customer.id == dropped).values(deleted_at=late_writer))
        await session.execute(changed.where(Customer.id == kept).values(company="Globex"))
    clock.now += timedelta(seconds=1)

    async with db.sessions() as session:
        assert ids(await search.search(session, ws, "carol diaz")) == [added]
        assert await search.search(session, ws, "bob stone") == []
        assert ids(await search.search(session, ws, "globex")) == [kept]


async def test_forget_workspace_reloads_from_the_database(db: Database) -> None:
    clock = Clock()
    ws, rep = await add_workspace(db, clock())
    first = await add_customer(db, ws, rep, 1, "Dana Lee", clock())
    search = CustomerSearch(clock, sync_interval=3600)
    async with db.sessions() as session:
        assert ids(await search.search(session, ws, "dana")) == [first]
    second = await add_customer(db, ws, rep, 2, "Dana Lee", clock())
    search.forget_workspace(ws)
    async with db.sessions() as session:
        assert ids(await search.search(session, ws, "dana lee")) == [first, second]


async def test_writes_noted_while_a_workspace_loads_are_not_lost(db: Database) -> None:
    clock = Clock()
    ws, rep = await add_workspace(db, clock())
    erin = await add_customer(db, ws, rep, 1, "Erin Fox", clock())
    search = CustomerSearch(clock, sync_interval=3600)

    async with db.sessions() as first, db.sessions() as second:
        read_customers = first.execute

        async def read_then_someone_writes(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = await read_customers(*args, **kwargs)
            search.note_saved(ws, 77, "Late Writer", None)  # committed after our read, before the build
            return result

        first.execute = read_then_someone_writes  # type: ignore[method-assign]
        both = await asyncio.gather(search.search(first, ws, "erin fox"), search.search(second, ws, "late writer"))
    assert [ids(matches) for matches in both] == [[erin], [77]]
