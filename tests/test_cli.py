"""The ``consentmw`` command as a new user meets it: check, missing extras, pipes, help."""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import consentmw
from consentmw.cli import build_parser
from consentmw.cli import main as cli_main
from consentmw.records import open_store

from .conftest import SECRET
from .records_support import receipt

ROOT = Path(__file__).resolve().parent.parent
SRC = str(Path(consentmw.__file__).resolve().parents[1])  # the sources under test
BASE = {"CONSENTMW_SECRET_KEY": SECRET, "CONSENTMW_RECORDS_URL": "none"}


def run(
    *args: str, env: dict[str, str] | None = None, block: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``consentmw ARGS`` in a fresh interpreter; ``block`` makes that module unimportable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTMW_")}
    pre = f"sys.modules[{block!r}] = None; " if block else ""  # import raises ImportError
    code = f"import sys; {pre}from consentmw.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": SRC, **(env or {})},
        timeout=60,
        check=False,
    )


# -- consentmw check: both middlewares, stores, names --------------------------------------------


def test_check_passes_a_good_configuration_of_both_middlewares(tmp_path: Path) -> None:
    env = {**BASE, "CONSENTMW_LOG_DIR": str(tmp_path), "CONSENTMW_LOG_ROTATION": "hourly",
           "CONSENTMW_LOG_TIMEZONE": "Europe/Oslo",
           "CONSENTMW_MASK_CLIENT_IN_SCOPE": "true"}  # fmt: skip
    out = run("check", env=env)
    assert out.returncode == 0, out.stderr
    assert '"rotation": "hourly"' in out.stdout and "configuration OK" in out.stderr


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("CONSENTMW_LOG_ROTATION", "weekly", "rotation must be one of"),
        ("CONSENTMW_LOG_TIMEZONE", "Mars/Olympus", "Mars/Olympus"),
        ("CONSENTMW_LOG_RETENTION_MONTHS", "200", "3..120"),
        ("CONSENTMW_LOG_RETENTION_MONTHS", "many", "CONSENTMW_LOG_RETENTION_MONTHS"),
        ("CONSENTMW_LOG_ASN_DATABASE", "/nonexistent/asn.mmdb", "asn_database"),
        ("CONSENTMW_LOG_LEGAL_HOLD", "", None),  # an empty reason is no hold: fine
        ("CONSENTMW_MASK_CLIENT_IN_SCOPE", "perhaps", "CONSENTMW_MASK_CLIENT_IN_SCOPE"),
        ("CONSENTMW_COUNT_VISITORS", "sometimes", "CONSENTMW_COUNT_VISITORS"),
        ("CONSENTMW_SALT_URL", "sqlite:///salts.db", "salt_url"),
    ],
)
def test_check_refuses_what_the_request_log_refuses_at_start_up(
    name: str, value: str, needle: str | None, tmp_path: Path
) -> None:
    env = {**BASE, "CONSENTMW_LOG_DIR": str(tmp_path / "logs"), name: value}
    if name == "CONSENTMW_SALT_URL":
        env["CONSENTMW_COUNT_VISITORS"] = "true"
    out = run("check", env=env)
    if needle is None:
        assert out.returncode == 0, out.stderr
        return
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and "configuration OK" not in out.stderr
    assert "Traceback" not in out.stderr


def test_check_refuses_a_salt_directory_inside_the_logs(tmp_path: Path) -> None:
    env = {**BASE, "CONSENTMW_LOG_DIR": str(tmp_path), "CONSENTMW_COUNT_VISITORS": "true",
           "CONSENTMW_SALT_DIR": str(tmp_path / "salts")}  # fmt: skip
    out = run("check", env=env)
    assert out.returncode == 2 and "inside the log directory" in out.stderr


@pytest.mark.parametrize("name", ["CONSENTMW_RECORDS_URL", "CONSENTMW_SALT_URL"])
def test_check_says_which_extra_a_postgres_url_needs(name: str, tmp_path: Path) -> None:
    env = {**BASE, "CONSENTMW_LOG_DIR": str(tmp_path), name: "postgresql://site:pw@db/site"}
    if name == "CONSENTMW_SALT_URL":
        env["CONSENTMW_COUNT_VISITORS"] = "true"
    out = run("check", env=env, block="psycopg")
    assert out.returncode == 2, out.stderr
    assert "pip install 'consentmw[postgres]'" in out.stderr
    assert "configuration OK" not in out.stderr and "Traceback" not in out.stderr
    assert ":pw@" not in out.stderr + out.stdout


def test_check_refuses_the_retired_legal_hold_option() -> None:
    out = run("check", env={**BASE, "CONSENTMW_LEGAL_HOLD": "case 7"})
    assert out.returncode == 2 and "legal_hold" in out.stderr


def test_check_names_the_variable_a_misspelling_meant() -> None:
    out = run("check", env={**BASE, "CONSENTMW_DEFALT_LANGUAGE": "en"})
    assert out.returncode == 2
    assert "did you mean CONSENTMW_DEFAULT_LANGUAGE?" in out.stderr
    assert "configuration OK" not in out.stderr
    other = run("check", env={**BASE, "CONSENTMW_FROBNICATE": "1"})
    assert other.returncode == 2 and "CONSENTMW_FROBNICATE" in other.stderr


def _names_read_in_the_repository() -> set[str]:
    """Every CONSENTMW_* name in the product, its scripts and examples; in tests, the
    names they read (tests also spell names wrong on purpose)."""
    name = r"CONSENTMW_[A-Z0-9_]*[A-Z0-9]"
    names: set[str] = set()
    for folder in ("src", "scripts", "examples", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*"):
            if not path.is_file() or path.suffix not in {".py", ".sh", ".md", ".toml", ""}:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if folder != "tests":
                names.update(re.findall(rf"\b{name}\b", text))
                continue
            reads = rf"(?:environ\.get\(|getenv\(|environ\[|_ENV = )[\"']({name})[\"']"
            names.update(re.findall(reads, text))
    return names


def test_check_knows_every_variable_the_repository_reads(tmp_path: Path) -> None:
    from consentmw.envconfig import TOOLING_VARIABLES, known_variables

    read = _names_read_in_the_repository()
    assert {"CONSENTMW_TEST_PG", "CONSENTMW_LOG_DIR", "CONSENTMW_SECRET_KEY"} <= read
    assert read - known_variables() == set()
    tooling = {name: "1" for name in TOOLING_VARIABLES}  # set by scripts and the test suite
    out = run("check", env={**tooling, **BASE, "CONSENTMW_LOG_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr


# -- extras --------------------------------------------------------------------------------------


def test_demo_without_uvicorn_says_which_extra() -> None:
    out = run("demo", block="uvicorn")
    assert out.returncode == 1
    assert out.stderr.strip() == "consentmw: the demo needs uvicorn: pip install 'consentmw[demo]'"


def test_records_with_postgres_without_psycopg_says_which_extra() -> None:
    out = run("records", "export", "--url", "postgresql://site:pw@db/site", block="psycopg")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "pip install 'consentmw[postgres]'" in out.stderr and ":pw@" not in out.stderr


# -- pipes ---------------------------------------------------------------------------------------


@pytest.fixture
def big_store(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/receipts.db"
    store = open_store(url)
    for i in range(3000):  # ~1 MB of JSON lines: far more than a pipe buffer holds
        store.add_sync(receipt(f"visitor-{i}"))
    store.close_sync()
    yield url


def test_export_into_a_closed_pipe_exits_quietly(big_store: str) -> None:
    code = "import sys; from consentmw.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": SRC}
    producer = subprocess.Popen(
        [sys.executable, "-c", code, "records", "export", "--url", big_store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert producer.stdout is not None and producer.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # head alone holds the reading end now
    first, _ = head.communicate(timeout=60)
    err = producer.stderr.read().decode()
    producer.stderr.close()
    assert producer.wait(timeout=60) in (0, 141)
    assert b'"consent_id": "visitor-0"' in first
    assert err == ""


# -- help and messages ---------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):
            for name, child in choices.items():
                yield (*path, name)
                yield from _commands(child, (*path, name))


def test_every_command_has_an_example_in_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(_commands(build_parser()))
    assert ("logs", "purge") in commands and ("records", "hold", "add") in commands
    missing = []
    for command in commands:
        with pytest.raises(SystemExit):
            cli_main([*command, "--help"])
        if "example" not in capsys.readouterr().out.lower():
            missing.append(" ".join(command))
    assert missing == []


def test_logs_stats_help_points_to_the_full_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["logs", "stats", "--help"])
    assert "consentmw analytics report" in capsys.readouterr().out


def test_every_message_on_stderr_starts_with_consentmw() -> None:
    """Each ``print(..., file=sys.stderr)`` in a CLI module, read from its source."""
    wrong = []
    for path in (Path(SRC) / "consentmw").rglob("cli.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print"):
                continue
            if not any(k.arg == "file" and ast.unparse(k.value) == "sys.stderr"
                       for k in node.keywords):  # fmt: skip
                continue
            first = node.args[0] if node.args else None
            text = ast.unparse(first) if first is not None else ""
            if not re.match(r"^f?['\"]consentmw[: ]", text) and text != "INSTALL_HINT":
                wrong.append(f"{path.name}:{node.lineno}: {text}")
    assert wrong == []


def test_logs_errors_carry_the_prefix(tmp_path: Path) -> None:
    out = run("logs", "purge", "--directory", str(tmp_path / "missing"))
    assert out.returncode == 2 and out.stderr.startswith("consentmw: ")
