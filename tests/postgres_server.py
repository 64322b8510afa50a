"""A real PostgreSQL server for the tests: Debian's binaries, a fresh cluster on a free port, run as a non-root user.

Under ``CI=true`` a missing server is a failure, never a skip (``.ci/run`` installs ``postgresql``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .missing import missing


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(user: str | None, args: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if user else args


class PgServer:
    """A running throw-away cluster: its URL, and a restart as an operator (or a crash) would cause."""

    def __init__(self, bin_dir: Path, data: Path, base: Path, port: int, user: str | None) -> None:
        self.bin_dir, self.data, self.base, self.port, self.user = bin_dir, data, base, port, user
        self.url = f"postgresql://tokentrace@127.0.0.1:{port}/postgres"

    def pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(_as_user(self.user, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]),
                       check=check, capture_output=True, timeout=60)

    def start(self) -> None:
        self.pg_ctl("-l", str(self.base / "log"), "-w", "-o",
                    f"-p {self.port} -k {self.base / 'run'} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c max_connections=200", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop", check=False)


@contextmanager
def postgres_server() -> Iterator[PgServer]:
    """Start a throw-away cluster (trust auth on 127.0.0.1); stop and delete it afterwards."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does)"
        missing(message)
    user = None
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        user = "postgres" if _has_user("postgres") else "nobody"
    base = Path(tempfile.mkdtemp(prefix="tokentrace-pg-"))
    data = base / "data"
    (base / "run").mkdir()
    if user:
        entry = pwd.getpwnam(user)
        for path in (base, base / "run"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    server = PgServer(bin_dir, data, base, _free_port(), user)
    try:
        subprocess.run(_as_user(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", "tokentrace", "--auth=trust",
                                       "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
        server.start()
        yield server
    finally:
        server.pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
