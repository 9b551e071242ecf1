"""Files the bot writes hold customer data (an export is the whole book): readable by their owner alone."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_private(path: Path, content: bytes) -> None:
    """Write `content` to `path` with mode 0600, also when the file was there before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        with contextlib.suppress(OSError):  # someone else's file we may write to: its mode is theirs
            os.fchmod(out.fileno(), 0o600)
        out.write(content)
