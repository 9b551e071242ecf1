"""Issue 13: start-up to the first answer, as a person starting `crm-bot console` sees it.

Starts `python -m bot console` on a SQLite file (already migrated by a first
start, as every start after the first finds it), types `/help` and `/log` on its
standard input, and times from the process start to the first line of each
answer. The median of `--runs` starts is printed.

    python bench/startup.py [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.8


def first_answers(database: str, lines: list[str], waits_for: list[str]) -> list[float]:
    """Seconds from the start of the process to the first output line containing each of `waits_for`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database, "DEFAULT_LOCALE": "en",
             "CRM_CONSOLE_USER": "Bench"})
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("".join(f"{line}\n" for line in lines))
    process.stdin.close()
    seen: list[float] = []
    for line in process.stdout:
        if len(seen) < len(waits_for) and waits_for[len(seen)] in line:
            seen.append(time.perf_counter() - started)
    process.wait(timeout=60)
    if len(seen) < len(waits_for):
        raise RuntimeError(f"the console never answered {waits_for[len(seen)]!r}")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{folder}/crm.db"
        first_answers(database, ["/add Tom"], ["#1 Tom"])  # migrates the file and opens the book
        runs = [first_answers(database, ["/help", "/log Tom call: bench"], ["/help log", "Logged for #1 Tom"])
                for _ in range(args.runs)]
    helps, logs = [run[0] for run in runs], [run[1] for run in runs]
    print(f"start-up to the first answer (/help): median {statistics.median(helps):.2f} s "
          f"(min {min(helps):.2f}, max {max(helps):.2f}; target ≤ {TARGET} s)")
    print(f"start-up to a /log's answer after it:  median {statistics.median(logs):.2f} s "
          f"(min {min(logs):.2f}, max {max(logs):.2f})")


if __name__ == "__main__":
    main()
