"""The one exception type for mistakes a user can fix, and the checks every CLI shares to report them.

Every CLI (`trainables.train`, `trainables.evaluate`, `study.run`, `reports.build`) turns a
bad flag, file or value into one line on stderr, `error: ...`, and exit code 2, before any
work starts where it can be checked early; the helpers here keep that shape the same
everywhere (argparse's usage block would otherwise precede the error).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


class UserError(Exception):
    """A user's mistake, reported as one line on stderr with exit code 2 and no traceback.

    The message should say what was wrong, where, and what would be accepted, e.g.
    ``--data /x: no such folder (give a folder of .png/.jpg images)``. CLIs catch it in
    ``main`` and print ``error: <message>``; library code raises it only for input that
    came from a person (flags, files, config values), never for programming errors.
    """


class ConfigError(UserError):
    """A configuration value is unknown, mistyped or impossible."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (`error: ...`) with exit code 2, like UserError."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see --help)\n")


def first_line(exc: BaseException, limit: int = 200) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:limit]


def one_line_errors(body: Callable[[], int],
                    *phrased: tuple[type[BaseException], Callable[[BaseException], str]]) -> int:
    """A CLI's exit code: `body()`'s, or 2 after one `error: ...` line for a UserError (its message) or
    for an exception of a `phrased` type (the message its function makes)."""
    handlers = ((UserError, str), *phrased)
    try:
        return body()
    except tuple(kind for kind, _ in handlers) as exc:
        phrase = next(say for kind, say in handlers if isinstance(exc, kind))
        print(f"error: {phrase(exc)}", file=sys.stderr)
        return 2


def check_writable_dir(path: str | Path, flag: str) -> None:
    """Refuse an output folder that could not be created or written, creating nothing.

    Walks up to the nearest existing ancestor: a regular file there (`--out a.txt/x`) or a
    folder this process cannot write in is a one-line UserError naming `flag`.
    """
    target = Path(path).expanduser().absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a folder; give a folder path")
    try:  # an anonymous temp file: the only reliable test (root ignores permission bits, mounts may be read-only)
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write in {existing} ({exc.strerror or type(exc).__name__}); "
                        "give a folder you can write to") from None


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (None for any other URI)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///"):].split("?")[0]))


def check_sqlite_store(uri: str, flag: str, must_exist: bool) -> None:
    """A `sqlite:///` tracking URI must name an SQLite database (or, unless `must_exist`, a new one).

    Opening any other file through MLflow would write its schema into it (an empty file) or
    fail deep inside SQLAlchemy (a text file), so both are refused here, before anything runs.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{flag} {uri}: {path} is a folder; give an SQLite file such as sqlite:///mlflow.db")
    if path.exists():
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise UserError(f"{flag} {uri}: cannot read {path} ({exc.strerror})") from None
        if head != SQLITE_MAGIC:
            what = "an empty file" if not head else "not an SQLite database"
            raise UserError(f"{flag} {uri}: {path} is {what}, not an MLflow store; give the study's mlflow.db "
                            "or a new file name")
        return
    if must_exist:
        raise UserError(f"{flag} {uri}: no MLflow store at {path}; pass --tracking-uri or set "
                        "MLFLOW_TRACKING_URI to the store the study logged to")
    check_writable_dir(path.parent, flag)


def check_tracking_uri(uri: str, flag: str, must_exist: bool) -> None:
    """A tracking URI MLflow can open without surprises: not a bare path, and a real SQLite store if sqlite.

    A bare path or `file:` URI selects MLflow's file store, which MLflow 3 no longer
    writes (it fails deep inside the first write, after a study has started).
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ("file" if uri.startswith("file:") else "")
    if scheme in ("", "file"):
        raise UserError(f"{flag} {uri}: a path or file: URI selects MLflow's file store, which MLflow 3 does "
                        "not write; give sqlite:///PATH/mlflow.db or http://HOST:5000")
    check_sqlite_store(uri, flag, must_exist)
