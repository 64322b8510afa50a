"""docs/postgresql.md as a DBA follows it, against the real PostgreSQL server the tests start: its SQL and its
command, in order; then an app connected as the role the page creates measures a call, and the CLI reads it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "postgresql.md").read_text(encoding="utf-8")
SQL = re.findall(r"```sql\n(.*?)```", PAGE, re.S)
BASH = re.findall(r"```bash\n(.*?)```", PAGE, re.S)


def _run_sql(url: str, block: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (s.strip() for s in block.split(";")):
            if statement:
                conn.execute(statement)


def test_the_postgresql_page_works_as_written(postgres_url: str, simulator: Any, tmp_path: Path) -> None:
    assert len(SQL) == 3 and len(BASH) == 1
    server = postgres_url.rsplit("@", 1)[1].split("/", 1)[0]  # 127.0.0.1:port

    def url(role: str) -> str:
        return f"postgresql://{role}@{server}/llm"

    _run_sql(postgres_url, "DROP DATABASE IF EXISTS llm; DROP ROLE IF EXISTS tokentrace_app; "
                           "DROP ROLE IF EXISTS tokentrace_owner")
    _run_sql(postgres_url, SQL[0])  # the roles and the database, as a superuser

    # before the tables exist, the app's role gets one line that names the fix
    from tokentrace.ledger.db import LedgerError
    from tokentrace.ledger.store import open_db

    try:
        open_db(url("tokentrace_app"), create=True).close()
        raise AssertionError("the app's role created tables it has no privilege for")
    except LedgerError as exc:
        assert "permission denied for schema public" in str(exc) and "tokentrace ledger init" in str(exc)

    (command,) = BASH[0].strip().splitlines()
    env_part, _, cli = command.partition(" tokentrace ")
    name, _, password = env_part.partition("=")
    args = cli.replace("db.internal:5432", server).split()
    init = subprocess.run([sys.executable, "-m", "tokentrace", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", name: password, "HOME": str(tmp_path)})
    assert init.returncode == 0 and "ledger ready" in init.stdout and "change-me" not in init.stdout, init.stderr

    _run_sql(url("tokentrace_owner"), SQL[1])  # the app role's privileges, as the owner

    app = f"""
import openai, tokentrace
from tokentrace.simulator import sync_client
tokentrace.instrument(ledger={url("tokentrace_app")!r})
client = openai.OpenAI(api_key="sk-test", max_retries=0, http_client=sync_client({simulator.port}))
client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
assert tokentrace.flush(10)
"""
    ran = subprocess.run([sys.executable, "-c", app], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and "permission denied" not in ran.stderr, ran.stderr
    report = subprocess.run([sys.executable, "-m", "tokentrace", "report", "--ledger", url("tokentrace_app"),
                             "--format", "json"], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["totals"]["calls"] == 1

    _run_sql(url("tokentrace_owner"), SQL[2])  # retention, as the owner
    with psycopg.connect(url("tokentrace_app")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM llm_usage").fetchone() == (1,)  # this year's row is kept
