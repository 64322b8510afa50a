"""Where a ledger is and whether it is safe to use: ``postgresql://`` URLs (described without their password, refused
when a password would be misread) and SQLite files (created owner-only; links and other users' files refused,
files open to others tightened). Stdlib only."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from .db import LedgerError


def is_url(location: str | os.PathLike[str]) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def describe(location: str | os.PathLike[str]) -> str:
    """The location for messages: a URL without its password or query (which may hold one), found without parsing
    the URL (a password with an unencoded ``/`` would be read as the host, port and path)."""
    if not is_url(location):
        return str(location)
    scheme, _, rest = str(location).partition("://")
    userinfo, at, where = rest.rpartition("@")
    user = userinfo.split(":", 1)[0].split("/", 1)[0].split("?", 1)[0]
    where = where.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{user + '@' if at and user else ''}{where}"


def url_problem(url: str) -> str | None:
    """Why a ``postgresql://`` URL cannot be used safely, or None: a password holding ``/``, ``?`` or ``#`` unencoded
    would be taken for the host, path or query (and printed as such)."""
    rest = url.partition("://")[2]
    userinfo = rest.rpartition("@")[0]
    if any(c in userinfo for c in "/?#"):
        return ("the ledger URL's password holds '/', '?' or '#': percent-encode the password "
                "(urllib.parse.quote(password, safe=''))")
    return None


def create_private(path: Path) -> bool:
    """Create the file (and its directory) readable by its owner only, if it does not exist yet (True); an existing
    one must be a regular file of this user, not a link (SQLite would follow it and create the target, its ``-wal``
    and ``-shm`` with the umask's mode): nothing about it is changed here (``tighten`` does, once the caller has
    found it to be a ledger)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        _check_existing(path)
        return False
    os.close(fd)
    return True


def tighten(path: Path) -> None:
    """Make a ledger file and its journal files their owner's only (warned about, once each)."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = os.lstat(name).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode) and mode & 0o077:
            os.chmod(name, stat.S_IMODE(mode) & 0o700)
            _warn_tightened(name, stat.S_IMODE(mode))


def _check_existing(path: Path) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise LedgerError(f"{path} is a symbolic link; tokentrace does not follow links to its ledger "
                          "(give the real file's path)")
    if not stat.S_ISREG(info.st_mode):
        raise LedgerError(f"{path} is not a regular file")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise LedgerError(f"{path} belongs to another user (uid {info.st_uid}); tokentrace writes usage only into "
                          "a ledger of its own user")


def _warn_tightened(path: Path, mode: int) -> None:
    logging.getLogger("tokentrace").warning(
        "the ledger file %s was readable or writable by others (mode %o); made it its owner's only",
        path, mode)
