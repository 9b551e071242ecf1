"""Fuzzy and pinyin customer search, held in memory per workspace (SPEC §3, §7).

A customer is found by the keys people actually type: the name as written
(case-, width- and accent-folded), the pinyin of a Chinese name (`liwei`,
`li wei`), its initials (`lw`), a single word of a multi-word name (`wendy` for
`王芳 Wendy`), and the company. Keys are compacted (spaces and punctuation
dropped), so `li wei` and `liwei` are one key.

Lookups must stay in single-digit milliseconds on 100,000 customers, so a query
is never scored against every key. Each distinct key string is cut into padded
n-grams held in an inverted index of `array` postings; a query's n-grams count
hits per key string (numpy `bincount`), the best-covered strings are ranked
with rapidfuzz in C, and only a few dozen are scored in Python by tier:
exact > word > prefix > substring > fuzzy. Distinct strings are stored once and
list their owners (customer id and key kind), so ten customers at "Acme Corp"
or two named 李伟 cost one key.
"""
from __future__ import annotations

import asyncio
import heapq
import math
import os
import re
import sys
import time
import unicodedata
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable

from rapidfuzz import process  # rapidfuzz loads in a few ms: at the top, out of the scoring loop
from rapidfuzz.distance import OSA
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Customer

if TYPE_CHECKING:
    import numpy as np

# numpy and pypinyin load when first needed (the first search, the first Chinese name), not
# with the process: start-up to the first answer is half a second shorter.
# This index converts one character at a time and never uses pypinyin's phrase
# dictionary; not loading it saves ~45 MB of RSS. Set before pypinyin is imported.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")

_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAN_RE = re.compile(f"[{_HAN}]")
#: Runs of Han characters, or runs of other letters/digits: `王芳wendy` is two words.
_WORD_RE = re.compile(f"[{_HAN}]+|[^\\W_{_HAN}]+")

#: Surnames whose reading differs from the character's everyday one (曾 is
#: "zeng" as a surname, "ceng" in pypinyin). Both readings are indexed.
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "区": "ou", "查": "zha", "仇": "qiu",
    "朴": "piao", "乐": "yue", "盖": "ge", "缪": "miao", "翟": "zhai", "覃": "qin",
    "尉": "yu", "种": "chong", "召": "shao", "员": "yun", "繁": "po", "藏": "zang",
    "秘": "bi", "卜": "bu", "薄": "bo", "都": "du", "句": "gou", "能": "nai",
    "折": "she", "阚": "kan", "隗": "wei", "佴": "nai", "长": "chang", "黑": "he",
    "祭": "zhai",
}

MAX_QUERY_CHARS = 100

# Key kinds, stored in the low 3 bits of an owner entry (customer_id << 3 | kind).
NAME, NAME_PINYIN, NAME_INITIALS, NAME_WORD, COMPANY, COMPANY_PINYIN, COMPANY_WORD = range(7)
_KIND_BITS = 3
_KIND_MASK = (1 << _KIND_BITS) - 1
#: Score of an exact match per kind: the name as written wins, a company is a
#: little below a name of the same quality.
_EXACT_SCORE = (100.0, 95.0, 95.0, 90.0, 94.0, 90.0, 85.0)
#: A Han query also looked up by its pinyin (homophones: 李为 → 李伟) ranks below the characters.
_VIA_PINYIN = 0.9

_MIN_SIMILARITY = 0.6  # below this an edit-distance match is noise
_POOL_COVERAGE = 0.3  # share of the query's n-grams a key must have to be ranked at all
_MAX_POOL = 1500  # keys ranked by rapidfuzz per query variant
_FUZZY_PICKS = 32  # best rapidfuzz matches scored by tier
#: A key a rapidfuzz pick adds to the near-complete ones scores below this share of an exact match
#: (a substring: < 0.80, an edit-distance match: < 0.75), so with enough customers above it the
#: fuzzy ranking is skipped.
_FUZZY_CEILING = 0.80 * max(_EXACT_SCORE)
_NEAR_PICKS = 64  # near-complete n-gram matches (exact/prefix/suffix) scored by tier
#: Below this best score (no exact, word or prefix match), also try the query with swapped letters.
_TRY_TRANSPOSED_BELOW = 70.0
_SWAP_LENGTHS = (4, 12)
_SWAP_PICKS = 8
#: A key that is the query with two neighbouring letters swapped back scores as an edit-distance match
#: of full similarity: above any other slip (a swap is the likeliest one), below a substring.
_SWAPPED_BACK = 0.75


@dataclass(frozen=True)
class Match:
    customer_id: int
    score: float  # 0–100, higher is better


# ---------------------------------------------------------------- normalising


def fold(text: str) -> str:
    """Case-, width- and accent-insensitive form: `ＬＩ Wéi` → `li wei`."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    if unicodedata.is_normalized("NFD", text):  # nothing decomposes, so no accents (all Han names)
        return text
    text = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in text if not unicodedata.combining(ch)))


def words(text: str) -> list[str]:
    """The folded words of a name; punctuation and spacing do not matter."""
    return _WORD_RE.findall(fold(text))


def has_han(text: str) -> bool:
    return not text.isascii() and _HAN_RE.search(text) is not None


@cache
def syllable(char: str) -> str:
    """Default toneless pinyin of one character (cached: pypinyin is slow per call)."""
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(char, style=Style.NORMAL)[0]


def pinyin(word: str) -> str:
    """Compact pinyin of a word; non-Han characters pass through (`王芳wendy` → `wangfangwendy`)."""
    return "".join(syllable(ch) for ch in word)


def initials(word: str) -> str:
    """First letter of each Han syllable, or of a non-Han word (`王芳` → `wf`, `wendy` → `w`)."""
    if not has_han(word):
        return word[0]
    return "".join(syllable(ch)[0] for ch in word)


def name_keys(name: str) -> set[tuple[str, int]]:
    """Every (key, kind) a customer name is found by."""
    tokens = words(name)
    if not tokens:
        return set()
    keys = {("".join(tokens), NAME)}
    if has_han(name):
        spelled = "".join(pinyin(t) for t in tokens)
        initial_letters = "".join(initials(t) for t in tokens)
        keys.add((spelled, NAME_PINYIN))
        keys.add((initial_letters, NAME_INITIALS))
        first = tokens[0][0]
        reading = SURNAME_READINGS.get(first)
        if reading and reading != syllable(first):
            keys.add((reading + spelled[len(syllable(first)) :], NAME_PINYIN))
            keys.add((reading[0] + initial_letters[1:], NAME_INITIALS))
    if len(tokens) > 1:
        keys.update((t, NAME_WORD) for t in tokens)
        keys.update((pinyin(t), NAME_WORD) for t in tokens if has_han(t))
    return keys


@lru_cache(maxsize=4096)
def company_keys(company: str | None) -> frozenset[tuple[str, int]]:
    """Every (key, kind) a customer is found by through their company (cached: many share one)."""
    tokens = words(company or "")
    if not tokens:
        return frozenset()
    keys = {("".join(tokens), COMPANY)}
    if has_han(company or ""):
        keys.add(("".join(pinyin(t) for t in tokens), COMPANY_PINYIN))
    if len(tokens) > 1:
        keys.update((t, COMPANY_WORD) for t in tokens)
    return frozenset(keys)


def grams(key: str) -> set[str]:
    """Padded n-grams of a key: bigrams where Han characters carry a syllable each, else trigrams.

    The padding makes a short query's grams say "starts with" / "ends with",
    so `lw` and `李伟` find exact and prefix matches without a separate index.
    """
    n = 2 if has_han(key) else 3
    padded = f"\x02{key}\x03"
    if len(padded) <= n:
        return {padded}
    return {padded[i : i + n] for i in range(len(padded) - n + 1)}


def tier_score(query: str, key: str, kind: int) -> float:
    """How well a compact query matches one key: exact > prefix > substring > fuzzy."""
    exact = _EXACT_SCORE[kind]
    if query == key:
        return exact
    if key.startswith(query):
        return exact * (0.80 + 0.10 * len(query) / len(key))
    if kind == NAME_INITIALS:
        return 0.0
    if len(query) >= 2 and query in key:
        return exact * (0.70 + 0.10 * len(query) / len(key))
    return exact * 0.75 * OSA.normalized_similarity(query, key, score_cutoff=_MIN_SIMILARITY)


def query_variants(query: str) -> list[tuple[str, float]]:
    """The compact forms a query is looked up by, with the weight of each."""
    compact = "".join(words(query[: MAX_QUERY_CHARS * 2]))[:MAX_QUERY_CHARS]
    if not compact:
        return []
    variants = [(compact, 1.0)]
    if has_han(compact):
        variants.append((pinyin(compact), _VIA_PINYIN))
    return variants


# ---------------------------------------------------------------- the index


@dataclass(frozen=True)
class _Hits:
    """Key strings sharing n-grams with a text: their ids, how many each shares, how many the text has."""

    ids: np.ndarray
    counts: np.ndarray
    wanted: int


class NameIndex:
    """One workspace's index."""

    def __init__(self) -> None:
        self._records: dict[int, tuple[str, str | None]] = {}
        # Distinct key strings, by id; ids of removed strings are reused.
        self._strings: list[str | None] = []
        self._string_ids: dict[str, int] = {}
        self._free_ids: list[int] = []
        self._lengths = array("H")
        # Kinds a string is owned as, a bit each; may keep a kind no owner has any more
        # (it then scores nothing), which spares a scan of big owner lists on removal.
        self._kinds = array("B")
        # Owners of a string: one owner entry (int) or many (array of entries).
        self._owners: list[int | array | None] = []
        self._postings: dict[str, array] = {}
        #: `_strings` as a numpy object array (built at the first search, then kept in step), so a
        #: pool of thousands of key strings is picked in C, not a Python loop.
        self._string_array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._records)

    def upsert(self, customer_id: int, name: str, company: str | None) -> None:
        record = (name, sys.intern(company) if company else None)
        old = self._records.get(customer_id)
        if old == record:
            return
        if old is not None:
            self._unlink(customer_id, *old)
        self._records[customer_id] = record
        for key, kind in name_keys(name) | company_keys(company):
            sid = self._string_ids.get(key)
            if sid is None:
                sid = self._new_string(key)
            self._add_owner(sid, customer_id << _KIND_BITS | kind)

    def remove(self, customer_id: int) -> None:
        old = self._records.pop(customer_id, None)
        if old is not None:
            self._unlink(customer_id, *old)

    def search(self, query: str, limit: int = 10) -> list[Match]:
        """Best matches first; ties are broken by customer id (oldest first)."""
        if limit <= 0 or not self._records:
            return []
        scored: dict[tuple[int, int], float] = {}  # (string id, kind) → score
        variants = query_variants(query)
        # the query as typed is ranked fuzzily too; a Han query's pinyin is there for homophones
        # (李为 → 李伟): its near-complete matches only
        counted = [(variant, weight, self._gram_hits(variant, _POOL_COVERAGE if position == 0 else 1.0))
                   for position, (variant, weight) in enumerate(variants)]
        for variant, weight, hits in counted:
            self._score_into(scored, variant, weight, self._near(hits, _NEAR_PICKS))
        if counted and not self._enough_above(scored, _FUZZY_CEILING * counted[0][1], limit):
            variant, weight, hits = counted[0]
            self._score_into(scored, variant, weight, self._fuzzy(variant, hits))
        if variants and max(scored.values(), default=0.0) < _TRY_TRANSPOSED_BELOW:
            variant, weight = variants[-1]  # the Latin spelling: swapped letters are a typing slip
            swapped_back, near_swaps = self._transposed_candidates(variant, scored)
            self._score_into(scored, variant, weight, near_swaps)
            for sid in swapped_back:
                for kind in _kinds_in(self._kinds[sid] & ~(1 << NAME_INITIALS)):
                    score = _EXACT_SCORE[kind] * _SWAPPED_BACK * weight
                    if score > scored.get((sid, kind), 0.0):
                        scored[(sid, kind)] = score
        best = self._best_customers(scored, limit)
        ranked = heapq.nsmallest(limit, best.items(), key=lambda item: (-item[1], item[0]))
        return [Match(customer_id, round(score, 1)) for customer_id, score in ranked]

    def _score_into(self, scored: dict[tuple[int, int], float], variant: str, weight: float, sids: set[int]) -> None:
        for sid in sids:
            key = self._strings[sid]
            for kind in _kinds_in(self._kinds[sid]):
                score = tier_score(variant, key, kind) * weight
                if score > scored.get((sid, kind), 0.0):
                    scored[(sid, kind)] = score

    # -- candidates

    def _gram_hits(self, text: str, share: float) -> _Hits:
        """The strings having at least `share` of the text's n-grams (and all but one at most)."""
        import numpy as np

        text_grams = grams(text)
        wanted = len(text_grams)
        postings = [np.frombuffer(self._postings[g], dtype=np.int32) for g in text_grams if g in self._postings]
        if not postings:
            none = np.zeros(0, dtype=np.intp)
            return _Hits(none, none, wanted)
        counts = np.bincount(np.concatenate(postings))
        ids = np.flatnonzero(counts >= max(1, min(wanted - 1, math.ceil(wanted * share))))
        return _Hits(ids, counts[ids], wanted)

    def _near(self, hits: _Hits, picks: int) -> list[int]:
        """Strings with all or all but one of the grams (exact, prefix, suffix): fullest, then shortest."""
        import numpy as np

        full = hits.counts >= max(1, hits.wanted - 1)
        near, counts = hits.ids[full], hits.counts[full]
        if len(near) > picks:
            lengths = np.frombuffer(self._lengths, dtype=np.uint16)[near]
            near = near[np.lexsort((lengths, -counts))[:picks]]
        return near.tolist()

    def _fuzzy(self, variant: str, hits: _Hits) -> set[int]:
        """rapidfuzz's best of the strings sharing enough of the variant's n-grams."""
        import numpy as np

        # a length this far from the variant's is already more edits than the similarity cut-off allows
        lengths = np.frombuffer(self._lengths, dtype=np.uint16)[hits.ids]
        close = (lengths >= _MIN_SIMILARITY * len(variant)) & (lengths * _MIN_SIMILARITY <= len(variant))
        pool, counts = hits.ids[close], hits.counts[close]
        if len(pool) > _MAX_POOL:
            pool = pool[np.argpartition(-counts, _MAX_POOL)[:_MAX_POOL]]
        picks = process.extract(
            variant,
            self._strings_by_id().take(pool).tolist(),
            scorer=OSA.normalized_similarity,
            limit=_FUZZY_PICKS,
            score_cutoff=_MIN_SIMILARITY,
        )
        return {int(pool[position]) for _, _, position in picks}

    def _enough_above(self, scored: dict[tuple[int, int], float], floor: float, limit: int) -> bool:
        """Whether `limit` customers already score above `floor`, which no fuzzy match can beat."""
        above: set[int] = set()
        for (sid, kind), score in scored.items():
            if score > floor:
                above.update(self._owned_as(sid, kind, limit))
                if len(above) >= limit:
                    return True
        return False

    def _transposed_candidates(self, variant: str, scored: dict[tuple[int, int], float]) -> tuple[set[int], set[int]]:
        """Keys that are the query with two neighbouring letters swapped back (`heato` → `hetao`), and
        keys starting or ending with such a swapped query.

        A swap breaks up to three trigrams, which can drop a short key below the
        pool's coverage; swapping back restores them. The keys that are the query
        swapped back are looked up as they are; only when there are none, and
        nothing one slip away was found either, are the swapped queries' n-grams
        counted for keys starting or ending with them.
        """
        if has_han(variant) or not _SWAP_LENGTHS[0] <= len(variant) <= _SWAP_LENGTHS[1]:
            return set(), set()
        swaps = [variant[:i] + variant[i + 1] + variant[i] + variant[i + 2 :]
                 for i in range(len(variant) - 1) if variant[i] != variant[i + 1]]
        exact = {self._string_ids[swapped] for swapped in swaps if swapped in self._string_ids}
        one_slip = tier_score(variant, variant[1:], NAME_PINYIN)  # the lowest a name one slip away scores
        if exact or max(scored.values(), default=0.0) + 1e-9 >= one_slip:
            return exact, set()
        found: set[int] = set()
        for swapped in swaps:
            found.update(self._near(self._gram_hits(swapped, 1.0), _SWAP_PICKS))
        return exact, found

    def _best_customers(self, scored: dict[tuple[int, int], float], limit: int) -> dict[int, float]:
        """Each customer's best score, expanding owners best-first and stopping once `limit` are certain."""
        best: dict[int, float] = {}
        floor = -1.0
        for (sid, kind), score in sorted(scored.items(), key=lambda item: -item[1]):
            if score <= 0.0 or score < floor:
                break
            for customer_id in self._owned_as(sid, kind, limit + len(best)):
                if score > best.get(customer_id, -1.0):
                    best[customer_id] = score
            if floor < 0 and len(best) >= limit:
                floor = score
        return best

    def _owned_as(self, sid: int, kind: int, enough: int) -> Iterable[int]:
        """Customers owning the string as `kind`; of a long list (a company of thousands) only the
        `enough` oldest, as ties rank by id and no more of one score can make the results."""
        owners = self._owners[sid]
        if owners is None:
            return ()
        if isinstance(owners, int):
            return (owners >> _KIND_BITS,) if owners & _KIND_MASK == kind else ()
        if len(owners) <= 4 * enough:
            return [owner >> _KIND_BITS for owner in owners if owner & _KIND_MASK == kind]
        import numpy as np

        entries = np.frombuffer(owners, dtype=np.int64)
        ids = entries[(entries & _KIND_MASK) == kind] >> _KIND_BITS
        if len(ids) > enough:
            ids = np.partition(ids, enough - 1)[:enough]
        return ids.tolist()

    def _strings_by_id(self) -> np.ndarray:
        import numpy as np

        if self._string_array is None or len(self._string_array) < len(self._strings):
            self._string_array = np.empty(max(1024, 2 * len(self._strings)), dtype=object)
            self._string_array[: len(self._strings)] = self._strings
        return self._string_array

    # -- maintenance

    def _unlink(self, customer_id: int, name: str, company: str | None) -> None:
        for key, kind in name_keys(name) | company_keys(company):
            self._remove_owner(self._string_ids[key], customer_id << _KIND_BITS | kind)

    def _new_string(self, key: str) -> int:
        if self._free_ids:
            sid = self._free_ids.pop()
            self._strings[sid], self._lengths[sid], self._kinds[sid] = key, min(len(key), 0xFFFF), 0
        else:
            sid = len(self._strings)
            self._strings.append(key)
            self._lengths.append(min(len(key), 0xFFFF))
            self._kinds.append(0)
            self._owners.append(None)
        self._string_ids[key] = sid
        if self._string_array is not None and sid < len(self._string_array):
            self._string_array[sid] = key
        postings = self._postings
        for gram in grams(key):
            posting = postings.get(gram)
            if posting is None:
                posting = postings[gram] = array("i")
            posting.append(sid)
        return sid

    def _drop_string(self, sid: int) -> None:
        key = self._strings[sid]
        for gram in grams(key):
            posting = self._postings[gram]
            posting.remove(sid)
            if not posting:
                del self._postings[gram]
        del self._string_ids[key]
        self._strings[sid] = None
        if self._string_array is not None:
            self._string_array[sid] = None
        self._free_ids.append(sid)

    def _add_owner(self, sid: int, owner: int) -> None:
        current = self._owners[sid]
        if current is None:
            self._owners[sid] = owner
        elif isinstance(current, int):
            self._owners[sid] = array("q", (current, owner))
        else:
            current.append(owner)
        self._kinds[sid] |= 1 << (owner & _KIND_MASK)

    def _remove_owner(self, sid: int, owner: int) -> None:
        current = self._owners[sid]
        if isinstance(current, array):
            current.remove(owner)
            remaining: int | array | None = current[0] if len(current) == 1 else current
        else:
            remaining = None
        self._owners[sid] = remaining
        if remaining is None:
            self._drop_string(sid)


def _kinds_in(bits: int) -> Iterable[int]:
    return (kind for kind in range(len(_EXACT_SCORE)) if bits >> kind & 1)


# ---------------------------------------------------------------- per workspace


@dataclass
class _Loaded:
    index: NameIndex
    synced_at: datetime  # wall clock when the last load/sync started reading
    synced_monotonic: float


@dataclass
class _Loading:
    """Writes noted while a workspace loads, replayed once it is built (None name = removed)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    writes: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    changed: bool = False  # another process wrote meanwhile: sync right after loading


class CustomerSearch:
    """Per-workspace NameIndexes loaded lazily from the database and kept current.

    Loaded on first use per workspace from `customers` (id, name, company; rows
    with deleted_at NULL only). Writers call `note_saved` / `note_removed` after
    their transaction commits (in-process, immediate). To pick up writes of
    OTHER processes sharing a PostgreSQL database, `search()` does an
    incremental sync at most every `sync_interval` seconds (monotonic clock)
    per workspace: rows with updated_at >= (the wall-clock time of the previous
    sync − 60 s margin), upserting live rows and removing deleted ones. On
    PostgreSQL a `ChangeListener` (storage.search_changes) calls `changed` as
    another process commits a write, and `catch_up` (its round trip) runs before
    each search, so the next search syncs at once instead of up to 5 s later.
    """

    SYNC_MARGIN = timedelta(seconds=60)

    def __init__(self, clock: Callable[[], datetime], sync_interval: float = 5.0) -> None:
        self._clock = clock
        self._sync_interval = sync_interval
        self._loaded: dict[int, _Loaded] = {}
        self._loading: dict[int, _Loading] = {}
        #: Awaited before each search: lets every change notice sent before it arrive (ChangeListener.caught_up).
        self.catch_up: Callable[[], Awaitable[None]] | None = None

    async def search(self, session: AsyncSession, workspace_id: int, query: str, limit: int = 10) -> list[Match]:
        if not query_variants(query):
            return []
        if self.catch_up is not None:
            await self.catch_up()
        loaded = self._loaded.get(workspace_id) or await self._load(session, workspace_id)
        if time.monotonic() - loaded.synced_monotonic >= self._sync_interval:
            await self._sync(session, workspace_id, loaded)
        return loaded.index.search(query, limit)

    def note_saved(self, workspace_id: int, customer_id: int, name: str, company: str | None) -> None:
        self._note(workspace_id, customer_id, name, company)

    def note_removed(self, workspace_id: int, customer_id: int) -> None:
        self._note(workspace_id, customer_id, None, None)

    def changed(self, workspace_id: int | None, removed: int | None = None) -> None:
        """Another process wrote customers of this workspace (None: of any): the next search syncs first;
        a `removed` customer leaves the index now (a deleted row is not there for the sync to see)."""
        for loaded_id, loaded in self._loaded.items():
            if workspace_id is None or loaded_id == workspace_id:
                loaded.synced_monotonic = float("-inf")
        for loading_id, loading in self._loading.items():
            if workspace_id is None or loading_id == workspace_id:
                loading.changed = True
        if workspace_id is not None and removed is not None:
            self.note_removed(workspace_id, removed)

    def forget_workspace(self, workspace_id: int) -> None:
        self._loaded.pop(workspace_id, None)

    def _note(self, workspace_id: int, customer_id: int, name: str | None, company: str | None) -> None:
        loaded = self._loaded.get(workspace_id)
        if loaded is not None:
            _apply(loaded.index, customer_id, name, company)
        elif workspace_id in self._loading:
            self._loading[workspace_id].writes.append((customer_id, name, company))

    async def _load(self, session: AsyncSession, workspace_id: int) -> _Loaded:
        """Read the workspace's live customers and build its index off the event loop."""
        loading = self._loading.setdefault(workspace_id, _Loading())
        async with loading.lock:
            if workspace_id in self._loaded:
                return self._loaded[workspace_id]
            started = self._clock()
            result = await session.execute(
                select(Customer.id, Customer.name, Customer.company).where(
                    Customer.workspace_id == workspace_id, Customer.deleted_at.is_(None)
                )
            )
            index = await asyncio.to_thread(_build, result.all())
            for customer_id, name, company in loading.writes:
                _apply(index, customer_id, name, company)
            synced = float("-inf") if loading.changed else time.monotonic()
            loaded = self._loaded[workspace_id] = _Loaded(index, started, synced)
            del self._loading[workspace_id]
            return loaded

    async def _sync(self, session: AsyncSession, workspace_id: int, loaded: _Loaded) -> None:
        """Apply rows other processes changed since the last sync (with a margin for clock skew)."""
        since = loaded.synced_at - self.SYNC_MARGIN
        loaded.synced_at = self._clock()
        loaded.synced_monotonic = time.monotonic()  # before awaiting: one sync at a time
        result = await session.execute(_CHANGED_SINCE, {"workspace_id": workspace_id, "since": since})
        for customer_id, name, company, deleted_at in result.all():
            _apply(loaded.index, customer_id, None if deleted_at else name, company)


#: `_sync`'s read, built once: it runs every few seconds on a busy book.
_CHANGED_SINCE = select(Customer.id, Customer.name, Customer.company, Customer.deleted_at).where(
    Customer.workspace_id == bindparam("workspace_id"), Customer.updated_at >= bindparam("since"))


def _build(rows: Iterable[tuple[int, str, str | None]]) -> NameIndex:
    index = NameIndex()
    for customer_id, name, company in rows:
        index.upsert(customer_id, name, company)
    return index


def _apply(index: NameIndex, customer_id: int, name: str | None, company: str | None) -> None:
    if name is None:
        index.remove(customer_id)
    else:
        index.upsert(customer_id, name, company)
