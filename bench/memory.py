"""SPEC §7: bot process memory with 100,000 customers loaded for search ≤ 250 MB RSS.

Run in a fresh process: it imports what the bot process imports (the platform
libraries, SQLAlchemy, the search index), then builds one workspace's index of
100,000 customers the way `CustomerSearch` does, and reports RSS before and after.

    python bench/memory.py [--customers N]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time

import psutil

from fixtures import customers  # also puts the repo root on sys.path

import slack_bolt  # noqa: E402,F401  (the bot process has these loaded)
import sqlalchemy  # noqa: E402,F401
import sqlalchemy.ext.asyncio  # noqa: E402,F401
import telegram  # noqa: E402,F401
import telegram.ext  # noqa: E402,F401

from storage.search import NameIndex, syllable  # noqa: E402

TARGET_MB = 250.0


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()

    syllable("李")  # pypinyin's dictionaries load on import; make sure they count as "before"
    before = rss_mb()
    print(f"RSS after imports (telegram, slack_bolt, sqlalchemy, storage.search): {before:.1f} MB")

    start = time.perf_counter()
    index = NameIndex()
    for customer in customers(args.customers):
        index.upsert(customer.id, customer.name, customer.company)
    built = time.perf_counter() - start
    after = rss_mb()
    print(
        f"RSS with {len(index):,} customers indexed: {after:.1f} MB "
        f"(index +{after - before:.1f} MB, built in {built:.1f} s)"
    )

    ok = after <= TARGET_MB
    print(f"{'PASS' if ok else 'FAIL'}: {after:.1f} MB RSS (target ≤ {TARGET_MB:.0f} MB)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
