"""``logs purge`` and ``logs stats`` through register_cli on our own parser."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from consentmw.requestlog.cli import main, register_cli


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="consentmw")
    register_cli(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def record(path: str, browser: str = "Chrome", t: str = "2026-11-27T10:00:00.000Z") -> str:
    return (
        json.dumps(
            {
                "time": t,
                "path": path,
                "browser": browser,
                "os": "Windows",
                "device": "desktop",
                "consent": "granted",
                "status": 200,
            }
        )
        + "\n"
    )


def test_register_cli_and_stats(tmp_path: Path, capsys) -> None:
    (tmp_path / "requests-2026-11-27.jsonl").write_text(
        record("/") * 3 + record("/<script>alert(1)</script>", "Firefox") + "{torn line\n"
    )
    with gzip.open(tmp_path / "requests-2026-11-26.jsonl.gz", "wt") as fh:
        fh.write(record("/old", t="2026-11-26T23:00:00.000Z"))
    out = tmp_path / "report.html"
    args = parse(["logs", "stats", str(tmp_path), "--html", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "5 requests in 2 file(s) (1 unreadable line(s) skipped)" in text
    assert "2026-11-26" in text and "Chrome" in text and "60.0%" in text
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_purge_dry_run_hold_and_delete(tmp_path: Path, capsys) -> None:
    for key in ("2020-01-01", "2099-01-01"):
        (tmp_path / f"requests-{key}.jsonl").write_text(record("/"))
    assert main(["logs", "purge", "--directory", str(tmp_path), "--dry-run"]) == 0
    assert "would delete" in capsys.readouterr().out
    (tmp_path / "LEGAL_HOLD").write_text("case 42")
    assert main(["logs", "purge", "--directory", str(tmp_path)]) == 0
    assert "suspended by legal hold (case 42)" in capsys.readouterr().out
    (tmp_path / "LEGAL_HOLD").unlink()
    assert main(["logs", "purge", "--directory", str(tmp_path), "--retention-months", "3"]) == 0
    assert "1 file(s) older than 3 months deleted" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["requests-2099-01-01.jsonl"]


def test_cli_errors(tmp_path: Path, capsys) -> None:
    assert main(["logs", "purge", "--directory", str(tmp_path), "--retention-months", "2"]) == 2
    assert "--retention-months" in capsys.readouterr().err
    assert main(["logs", "stats", str(tmp_path / "missing")]) == 2
    assert main(["logs"]) == 2
    with pytest.raises(SystemExit):
        main(["logs", "purge", "--retention-months", "x"])


def test_every_logs_command_takes_the_directory_as_dir(tmp_path: Path, capsys) -> None:
    (tmp_path / "requests-2020-01-01.jsonl").write_text(record("/"))
    assert main(["logs", "purge", str(tmp_path), "--dry-run"]) == 0
    assert "would delete" in capsys.readouterr().out
    assert main(["logs", "stats", "--directory", str(tmp_path)]) == 0  # the older spelling
    assert "1 requests" in capsys.readouterr().out
    assert main(["logs", "purge", str(tmp_path), "--directory", str(tmp_path / "x")]) == 2
    assert "two directories" in capsys.readouterr().err


def test_the_directory_defaults_to_the_environment(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "requests-2020-01-01.jsonl").write_text(record("/"))
    monkeypatch.setenv("CONSENTMW_LOG_DIR", str(tmp_path))
    assert main(["logs", "stats"]) == 0
    assert "1 requests" in capsys.readouterr().out
