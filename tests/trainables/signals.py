"""Command-line runs a test stops with a signal (as a scheduler or Ctrl-C would): never left running."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def killed_if_running(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """`proc` for the block; a run still going after it (a wait that failed, a signal it did not end
    on) is killed, so a failing test leaves nothing behind."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
