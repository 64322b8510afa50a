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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


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


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throw-away cluster; yield its URL (trust auth on 127.0.0.1); stop and delete it afterwards."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    user = None
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        user = "postgres" if _has_user("postgres") else "nobody"
    base = Path(tempfile.mkdtemp(prefix="tokentrace-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        for path in (base, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    try:
        subprocess.run(_as_user(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", "tokentrace", "--auth=trust",
                                       "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
        subprocess.run(_as_user(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                                       "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                                             "-c max_connections=200", "start"]),
                       check=True, capture_output=True, timeout=60)
        yield f"postgresql://tokentrace@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_user(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def restart(url: str) -> None:
    """Stop and start the server behind ``url`` (the fixture's cluster)."""
    bin_dir = _bin_dir()
    assert bin_dir is not None
    port = url.rsplit(":", 1)[1].split("/")[0]
    out = subprocess.run(["pgrep", "-f", f"-p {port} "], capture_output=True, text=True).stdout.split()
    assert out, "no server found"
    data = Path(f"/proc/{out[0]}/cwd").resolve()
    user = "postgres" if os.geteuid() == 0 and _has_user("postgres") else ("nobody" if os.geteuid() == 0 else None)
    subprocess.run(_as_user(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "restart"]),
                   check=True, capture_output=True, timeout=60)
    time.sleep(0.2)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
