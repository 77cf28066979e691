"""The OpenAPI spec against the running API: schemathesis (its CLI, every phase: examples,
coverage, fuzzing, stateful via the spec's links) against ``/api/v1`` on 127.0.0.1 over a
seeded state database, with an admin token.

Checks: no 5xx, every status and content type documented, every response body matching its
schema, invalid input refused (a 413 counts as refusal), no endpoint answering without a
token, deleted windows gone. Not checked: that every schema-valid request succeeds — window
times must lie around *now* (not over, starting within 366 days), which a schema cannot say.
Everything schemathesis writes stays in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from alertd.model import Level
from tests.integration.api_harness import TOKENS, app_for, build, seed, start, write_config

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
]
CONFIG = """\
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415"]
"""


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed in the venv")
async def test_api_conforms_to_its_openapi_spec(tmp_path: Path) -> None:
    h = build(tmp_path / "state", write_config(tmp_path / "cfg"))
    seed(h)
    for n in range(40):  # enough that acks and resolves by the fuzzer leave some to list
        h.fire("bulk", {"instance": f"b{n:02d}", "job": "bulk"}, Level.MINOR, 1.0)
    runner, base = await start(app_for(h))
    work = tmp_path / "schemathesis"
    work.mkdir()
    (work / "schemathesis.toml").write_text(CONFIG)
    try:
        proc = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            f"{base}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKENS['admin'][0]}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            "40",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
            cwd=work,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
        rows = h.store.conn.execute("SELECT DISTINCT actor FROM timeline").fetchall()
    finally:
        await runner.cleanup()
        h.store.conn.close()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-20000:]
    assert "Tested: 14" in text  # every operation of the spec was exercised
    assert ("admin",) in rows  # it got past auth: its acks and comments are on timelines
