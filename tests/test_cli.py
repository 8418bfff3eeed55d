"""`cloudassist keys`: create, list, disable and enable access keys of named accounts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cloudassist.cli.main import main


def test_keys_lifecycle_without_ever_showing_a_secret_twice(tmp_path: Path) -> None:
    """A created key's secret is printed once; `list` shows the key and account but never the secret."""
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--account", "team-b", "--data-dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    fields = dict(line.split(":", 1) for line in created.output.strip().splitlines())
    key_id, secret = fields["AccessKeyId"].strip(), fields["AccessKeySecret"].strip()
    assert fields["Account"].strip() == "team-b"
    assert key_id.startswith("LTAI")
    assert len(secret) >= 24

    listed = runner.invoke(main, ["keys", "list", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0
    assert key_id in listed.output
    assert "team-b" in listed.output
    assert secret not in listed.output

    disabled = runner.invoke(main, ["keys", "disable", key_id, "--data-dir", str(tmp_path)])
    assert disabled.exit_code == 0
    assert "disabled" in disabled.output
    assert "no" in runner.invoke(main, ["keys", "list", "--data-dir", str(tmp_path)]).output
    enabled = runner.invoke(main, ["keys", "enable", key_id, "--data-dir", str(tmp_path)])
    assert enabled.exit_code == 0
    assert "enabled" in enabled.output


def test_disabling_an_unknown_key_fails_with_a_message(tmp_path: Path) -> None:
    """Disabling a key that does not exist exits non-zero and says so."""
    result = CliRunner().invoke(main, ["keys", "disable", "LTAInope", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "no access key LTAInope" in result.output
