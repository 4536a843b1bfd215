"""Opening ClickHouse: a server by URL (`http(s)://…`), or the chdb engine inside this process
(`chdb:///folder`), both through the clickhouse-connect client, so the same SQL runs on either.

chdb hosts one engine per process, on one folder, and the folder is locked by the process that
opened it. So this process remembers the first folder it opened (`_engine`) and keeps a client
on it for as long as it lives: every later client on that folder joins the same engine (several
containers in one test process, each with its own database), and a client on another folder is
refused with both folders named, instead of chdb's "already initialized" after the fact. A
folder held by another process is recognised before chdb is asked (chdb would print its own
error on the terminal and raise a vague one): `ChdbFolderInUseError`.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect

CHDB_SCHEME = "chdb://"
SERVER_TIMEOUT = 30.0
"""Analytics queries scan facts: a longer default than the documents' and search's."""


class AnalyticsEngineError(RuntimeError):
    """The analytics engine cannot be opened as configured."""


class ChdbFolderInUseError(AnalyticsEngineError):
    """Another process (a running `mercato serve`, say) holds the chdb folder."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        super().__init__(
            f"the analytics engine's folder {folder} is in use by another process "
            "(chdb lets one process at a time open it)"
        )


class ChdbFolderConflictError(AnalyticsEngineError):
    """This process already runs chdb on another folder (one folder per process, ever)."""

    def __init__(self, opened: str, asked: str) -> None:
        self.opened = opened
        self.asked = asked
        super().__init__(
            f"this process runs the chdb engine on {opened}; it cannot also open {asked} "
            "(chdb hosts one folder per process)"
        )


@dataclass(frozen=True)
class _Engine:
    folder: str
    anchor: Any
    """A client kept open for the life of the process, so the engine (and its lock) stays."""


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def chdb_folder(dsn: str) -> str | None:
    """The folder of a `chdb:///folder` DSN, resolved (None for a server URL)."""
    if not dsn.startswith(CHDB_SCHEME):
        return None
    path = dsn[len(CHDB_SCHEME) :].split("?", 1)[0]
    if not path:
        raise AnalyticsEngineError(f"no folder in the chdb DSN {dsn!r}")
    return os.path.realpath(path)


def open_client(dsn: str, *, timeout: float = SERVER_TIMEOUT) -> Any:
    """A new clickhouse-connect client for `dsn` (blocking: call it in a thread). A server's
    client connects within `timeout` seconds and waits at most that long for each answer
    (chdb runs in this process: nothing to wait for)."""
    folder = chdb_folder(dsn)
    if folder is None:
        return clickhouse_connect.get_client(
            dsn=dsn, connect_timeout=timeout, send_receive_timeout=timeout
        )
    return _chdb_client(folder)


def _chdb_client(folder: str) -> Any:
    global _engine
    with _engine_lock:
        if _engine is None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            refuse_if_locked(folder)
            _engine = _Engine(folder, clickhouse_connect.get_client(dsn=f"{CHDB_SCHEME}{folder}"))
        elif _engine.folder != folder:
            raise ChdbFolderConflictError(_engine.folder, folder)
        return clickhouse_connect.get_client(dsn=f"{CHDB_SCHEME}{folder}")


def refuse_if_locked(folder: str) -> None:
    """Raise `ChdbFolderInUseError` if another process holds the folder.

    The engine takes an exclusive `flock` on `<folder>/status` for as long as it runs (as
    clickhouse-server does); trying the same lock without waiting, and letting go at once,
    tells whether someone holds it. Someone may be this very process (a client opened without
    this module): `/proc/locks` names the holder.
    """
    status = Path(folder) / "status"
    try:
        descriptor = os.open(status, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not _held_by_this_process(os.fstat(descriptor)):
            raise ChdbFolderInUseError(folder) from None
    finally:
        os.close(descriptor)  # closing the descriptor also lets go of a lock it took


def _held_by_this_process(file: os.stat_result) -> bool:
    """Whether this process holds the `flock` on `file`; True when the system cannot tell
    (no `/proc/locks`): then chdb itself decides, and says so in its own words."""
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        return True
    device = f"{os.major(file.st_dev):02x}:{os.minor(file.st_dev):02x}:{file.st_ino}"
    # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1311 0 EOF": kind, …, pid, device:inode.
    holders = {
        int(fields[4])
        for fields in (line.split() for line in locks.splitlines())
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device
    }
    return not holders or holders == {os.getpid()}
