"""Issue 12, hole 5: a 1,000,000-row file (about 7.5 MB) sent to the chat's /import is refused at the
50,000-row cap while it streams, before its rows are held. Prints RSS before and after, and the time.

    python bench/import_cap.py
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handlers.errors import UserError  # noqa: E402
from handlers.transfer import MAX_ROWS, read_plan  # noqa: E402


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    content = b"name\r\n" + b"".join(b"%06d\r\n" % n for n in range(1_000_000))
    before = rss_mb()
    started = time.perf_counter()
    try:
        read_plan(content, "big.csv", "en", max_rows=MAX_ROWS)
        verdict = "ACCEPTED (the cap did not hold)"
    except UserError as refused:
        verdict = f"refused ({refused.key})"
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"1,000,000 rows, {len(content) / 2**20:.1f} MB: {verdict} in {took:.2f} s; "
          f"RSS {before:.1f} → {rss_mb():.1f} MB (peak {peak:.1f} MB, building the file included)")


if __name__ == "__main__":
    main()
