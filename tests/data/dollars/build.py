"""Rebuild ``recordings.json``: real provider responses recorded by public test suites (VCR cassettes), the ones the
dollars corpus test replays through the real SDKs.

    python tests/data/dollars/build.py CHECKOUT [CHECKOUT ...]

Each CHECKOUT is a clone of a repository listed in ``SOURCES``. Only answered calls to the providers' generation
APIs are kept (OpenAI chat completions and Responses, Anthropic ``/v1/messages``, Gemini ``generateContent`` /
``streamGenerateContent``); bodies are stored decompressed, as text, exactly as recorded otherwise. Each recording
keeps its repository, path, commit and licence: the recordings are that project's test data, under its licence.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import yaml

SOURCES = {
    "simonw/llm": ("Apache-2.0", "tests/cassettes"),
    "simonw/llm-anthropic": ("Apache-2.0", "tests/cassettes"),
    "simonw/llm-gemini": ("Apache-2.0", "tests/cassettes"),
}
"""Repository -> (licence, folder of cassettes). Not traceloop/openllmetry, opentelemetry-python-contrib,
pydantic-ai or vercel/ai: the acceptance checks outside the project replay those."""
HOSTS = {"api.anthropic.com": "anthropic", "generativelanguage.googleapis.com": "google", "api.openai.com": "openai"}
OPENAI_PATHS = ("/v1/chat/completions", "/v1/responses")
OUT = Path(__file__).with_name("recordings.json")


def _text(body: object, encoding: list[str] | None) -> str:
    raw = body.get("string", "") if isinstance(body, dict) else body
    if isinstance(raw, str):
        return raw
    assert isinstance(raw, bytes)
    if (encoding and "gzip" in encoding) or raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def recordings(checkout: Path, repo: str) -> list[dict[str, object]]:
    licence, folder = SOURCES[repo]
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    found = []
    for path in sorted((checkout / folder).rglob("*.yaml")):
        cassette = yaml.safe_load(path.read_text(encoding="utf-8"))
        for index, interaction in enumerate(cassette.get("interactions") or ()):
            request, response = interaction["request"], interaction["response"]
            host = request["uri"].split("/")[2]
            provider = HOSTS.get(host)
            if request["method"] != "POST" or provider is None or response["status"]["code"] != 200:
                continue
            uri = request["uri"].split("?")[0]
            if provider == "google" and "enerateContent" not in uri:
                continue
            if provider == "openai" and not uri.endswith(OPENAI_PATHS):
                continue
            headers = {k.lower(): v for k, v in response["headers"].items()}
            found.append({
                "id": f"{repo.split('/')[1]}:{path.stem}:{index}",
                "source": {"repo": repo, "path": str(path.relative_to(checkout)), "commit": commit,
                           "licence": licence},
                "provider": provider,
                "path": "/" + uri.split("/", 3)[3],
                "request": json.loads(request["body"]),
                "content_type": headers.get("content-type", ["application/json"])[0],
                "body": _text(response["body"], headers.get("content-encoding")),
            })
    return found


def main(checkouts: list[str]) -> None:
    everything = []
    for checkout in map(Path, checkouts):
        remote = subprocess.run(["git", "-C", str(checkout), "config", "--get", "remote.origin.url"],
                                capture_output=True, text=True).stdout.strip()
        repo = next((r for r in SOURCES if remote.endswith(r) or remote.endswith(r + ".git")
                     or checkout.name in (r.split("/")[1], r.replace("/", "+"))), None)
        if repo is None:
            raise SystemExit(f"{checkout}: not one of {sorted(SOURCES)}")
        everything.extend(recordings(checkout, repo))
    OUT.write_text(json.dumps(everything, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(everything)} recordings -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
