"""``alertd notify test CHANNEL``: one message through the real delivery path, outcome printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.cli import main
from tests.conftest import SmtpServer

pytestmark = pytest.mark.integration


def config_dir(tmp_path: Path, port: int) -> Path:
    (tmp_path / "thresholds.yaml").write_text("rules: []\n")
    (tmp_path / "channels.yaml").write_text(
        f"""
channels:
  mail:
    type: email
    host: 127.0.0.1
    port: {port}
    starttls: false
    from: alertd@example.com
    timeout: 2
teams:
  tier1:
    members: [{{name: Wang, email: wang@example.com}}]
    channels: [mail]
routes:
  - notify: [tier1]
"""
    )
    return tmp_path


def test_a_test_message_arrives_and_the_command_says_so(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["notify", "test", "mail", "--config-dir", str(config_dir(tmp_path, smtp_server.port))]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "test message via mail to wang@example.com" in out
    assert out.rstrip().endswith("DELIVERED")
    (message,) = smtp_server.messages
    assert message.rcpt_tos == ("wang@example.com",)
    assert b"Test message from alertd via mail" in message.content
    assert b"Subject: [P4] TEST #0 minor" in message.content  # no real incident's number


def test_to_overrides_the_team(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    d = config_dir(tmp_path, smtp_server.port)
    assert main(["notify", "test", "mail", "--to", "li@example.com", "--config-dir", str(d)]) == 0
    assert smtp_server.messages[0].rcpt_tos == ("li@example.com",)


def test_an_unreachable_server_is_reported_with_each_attempt(
    tmp_path: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    d = config_dir(tmp_path, closed_port)
    code = main(["notify", "test", "mail", "--timeout", "2.5", "--config-dir", str(d)])
    out = capsys.readouterr().out
    assert code == 1
    assert "retryable: attempt 1 failed (connect)" in out
    lines = out.splitlines()
    (verdict,) = [i for i, line in enumerate(lines) if line.startswith("not delivered")]
    if "retrying in" in lines[verdict - 1]:  # the last attempt meant to retry: say it won't
        assert lines[verdict].startswith("not delivered (no more retries: --timeout 2.5s")
    assert out.rstrip().endswith("FAILED")


def test_an_unknown_channel_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notify", "test", "pager", "--config-dir", str(config_dir(tmp_path, 25))]) == 2
    assert "channels: mail" in capsys.readouterr().err


def test_a_recipient_refused_while_the_others_got_it_is_a_failure_named(
    tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # user-test finding: a 550 for one of two recipients printed DELIVERED and exit 0
    smtp_server.handler.refuse.add("reject@example.com")
    d = config_dir(tmp_path, smtp_server.port)
    to = ["--to", "wang@example.com", "--to", "reject@example.com"]
    code = main(["notify", "test", "mail", *to, "--timeout", "3", "--config-dir", str(d)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "refused by reject@example.com (550" in out  # the attempt says who did not get it
    assert "not delivered to reject@example.com" in out
    assert out.rstrip().endswith("FAILED")
    (message,) = smtp_server.messages
    assert message.rcpt_tos == ("wang@example.com",)


@pytest.mark.parametrize("timeout", ["0", "-3", "nan", "soon"])
def test_a_timeout_that_allows_no_attempt_is_refused(
    tmp_path: Path, timeout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Admin user test: --timeout 0 and -3 were taken, and nothing was sent."""
    d = str(config_dir(tmp_path, 25))
    with pytest.raises(SystemExit) as exit_:
        main(["notify", "test", "mail", "--timeout", timeout, "--config-dir", d])
    assert exit_.value.code == 2
    assert "--timeout" in capsys.readouterr().err
