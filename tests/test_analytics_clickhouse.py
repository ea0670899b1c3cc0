"""The ClickHouse engine: the report's ClickHouse SQL, run by chDB (ClickHouse in this
process) on a MergeTree table of the schema, equals the embedded DuckDB report on the
same records; retention drops partitions unless a legal hold is in force."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb", reason="the analytics extra is part of the test extra")
pytest.importorskip("chdb", reason="chDB is part of the test extra")

from consentmw.analytics.clickhouse import (
    ChdbClient,
    ClickHouseEngine,
    create_table_sql,
    open_client,
    purge_partitions,
)
from consentmw.analytics.report import build_report
from tests.test_analytics_report import rec, write_lines
from tests.test_analytics_visits import DAYS, check_plan, log_plan, plan

ROOT = Path(__file__).resolve().parent.parent
END = date(2026, 11, 30)


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_requestlog", ROOT / "benchmarks" / "gen_requestlog.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(client: ChdbClient, directory: Path, table: str = "consentmw.requests") -> None:
    """What the shipper does: every line of every period file into the table."""
    client.command("CREATE DATABASE IF NOT EXISTS consentmw")
    client.command(create_table_sql(table))
    for pattern in ("requests-*.jsonl", "requests-*.jsonl.gz", "*/requests-*.jsonl*"):
        if not list(directory.glob(pattern)):
            continue
        client.command(
            f"INSERT INTO {table} SELECT * FROM file('{directory}/{pattern}', 'JSONEachRow') "
            "SETTINGS date_time_input_format = 'best_effort', "
            "input_format_skip_unknown_fields = 1, input_format_allow_errors_ratio = 1"
        )


@pytest.fixture
def chdb_client() -> Iterator[ChdbClient]:
    client = ChdbClient()
    yield client
    client.close()


def same(duck: dict[str, Any], house: dict[str, Any]) -> None:
    assert house["sources"] == {"clickhouse_table": "consentmw.requests"}
    for key in duck:
        if key != "sources":
            assert house[key] == duck[key], key


@pytest.mark.parametrize(
    ("visitors", "zone", "top"),
    [(True, "Europe/Oslo", 10), (False, "UTC", 3), (True, "America/St_Johns", 1000)],
)
def test_clickhouse_sql_gives_the_duckdb_report(
    tmp_path: Path, chdb_client: ChdbClient, visitors: bool, zone: str, top: int
) -> None:
    _generator().generate(tmp_path, 30_000, days=6, visitors=visitors, end=END, seed=7)
    first, last = END - timedelta(days=4), END
    duck = build_report(tmp_path, first, last, timezone=zone, top=top).to_dict()
    load(chdb_client, tmp_path)
    house = ClickHouseEngine(chdb_client).report(first, last, timezone=zone, top=top).to_dict()
    same(duck, house)
    assert duck["pageviews"] > 1000 and len(duck["pages"]) == min(top, 5000)
    assert duck["utm"]["campaigns"] and duck["referrers"] and duck["countries"]
    assert (duck["visitors"] is not None) is visitors
    assert len(duck["series"]["hour"]) in (5 * 24, 5 * 24 + 1, 5 * 24 - 1)
    # visits, bounce rate and entry pages are compared by same() too: make sure they
    # are there to compare, with visits of more than one page view among them
    assert (duck["visits"] is not None) is visitors
    if visitors:
        assert duck["visits"] > duck["visitors"] and 0.5 < duck["bounce_rate"] < 1
        assert len(duck["entry_pages"]) == min(top, len({r["path"] for r in duck["pages"]}))
        assert any(e["bounce_rate"] < 1 for e in duck["entry_pages"])
    else:
        assert duck["bounce_rate"] is None and duck["entry_pages"] is None


def test_visits_bounces_and_entry_pages_at_their_edges(
    tmp_path: Path, chdb_client: ChdbClient
) -> None:
    def view(path: str, at: str, key: str | None, **fields: Any) -> dict[str, Any]:
        return rec(path, time=f"2026-11-30T{at}Z", visitor=key, **fields)

    records = [
        # a: 29:59.999 apart is one visit; exactly 30 minutes later starts the next
        view("/x", "12:00:00.000", "a"),
        view("/y", "12:29:59.999", "a"),
        view("/z", "12:59:59.999", "a"),
        view("/style.css", "12:45:00.000", "a", kind="asset"),  # not a page view
        # b: two views in one millisecond: the entry page is the first path
        view("/q", "13:00:00.000", "b"),
        view("/p", "13:00:00.000", "b"),
        view("/p", "13:10:00.000", "c"),  # one view: a bounce
        view("/x", "01:00:00.000", "d"),  # two single views of one key: two bounces
        view("/x", "03:00:00.000", "d"),
        view("/p", "14:00:00.000", None),  # no key (refusal or signal): no visit
    ]
    write_lines(tmp_path / "requests-2026-11-30.jsonl", records)
    load(chdb_client, tmp_path)
    for zone, top in (("UTC", 10), ("America/St_Johns", 2)):
        duck = build_report(tmp_path, END, END, timezone=zone, top=top).to_dict()
        house = ClickHouseEngine(chdb_client).report(END, END, timezone=zone, top=top)
        same(duck, house.to_dict())
        if zone == "UTC":
            assert duck["visitors"] == 4 and duck["pageviews"] == 9
            assert duck["visits"] == 6 and duck["bounce_rate"] == round(4 / 6, 4)
            assert duck["entry_pages"] == [
                {"path": "/x", "visits": 3, "bounce_rate": round(2 / 3, 4)},
                {"path": "/p", "visits": 2, "bounce_rate": 0.5},
                {"path": "/z", "visits": 1, "bounce_rate": 1.0},
            ]
        else:  # St John's: d's 01:00 and 03:00 UTC are the day before; top 2 of entries
            assert duck["visits"] == 4 and duck["bounce_rate"] == 0.5
            assert [e["path"] for e in duck["entry_pages"]] == ["/p", "/x"]


def test_clickhouse_counts_the_visits_the_request_log_wrote(
    tmp_path: Path, chdb_client: ChdbClient
) -> None:
    """The visit plan of the embedded engine's test, through the real request log with
    visitor keys, then into ClickHouse: the engine finds what the plan says."""
    visitors = plan(3)
    sent = log_plan(tmp_path, visitors)
    load(chdb_client, tmp_path / "logs")
    engine = ClickHouseEngine(chdb_client)
    check_plan(engine.report(DAYS[0], DAYS[1]).to_dict(), visitors, sent)


def test_records_without_kind_and_ties_at_the_top_boundary(
    tmp_path: Path, chdb_client: ChdbClient
) -> None:
    noon = datetime(2026, 11, 30, 12, tzinfo=timezone.utc).timestamp()
    old = [rec(p, noon, kind=None) for p in ("/", "/x.CSS", "/_consent/preferences", "/a")]
    old += [rec("/", noon, status=404, kind=None), rec("/", noon, device="bot", kind=None)]
    old += [rec("/api", noon, method="POST", kind=None), rec("/r", noon, status=302, kind=None)]
    for r in old[:3]:
        del r["kind"]  # written before the field existed
    # eight referrers with one page view each, top 3: the same three from both engines
    tied = [rec(f"/t{i}", noon, referrer=f"r{7 - i}.example") for i in range(8)]
    write_lines(tmp_path / "requests-2026-11-30.jsonl", old + tied)
    with open(tmp_path / "requests-2026-11-30.jsonl", "a") as fh:
        fh.write('{"time": "torn line\n[1, 2]\n')
    duck = build_report(tmp_path, END, END, top=3).to_dict()
    load(chdb_client, tmp_path)
    house = ClickHouseEngine(chdb_client).report(END, END, top=3).to_dict()
    same(duck, house)
    assert duck["requests"] == {
        "page": 10, "asset": 1, "api": 1, "consent": 1, "redirect": 1, "error": 1, "bot": 1,
    }  # fmt: skip
    assert [r["host"] for r in duck["referrers"]] == [None, "r0.example", "r1.example"]
    assert [r["path"] for r in duck["pages"]] == ["/", "/a", "/t0"]


def test_the_schema_partitions_by_month_without_a_ttl(chdb_client: ChdbClient) -> None:
    chdb_client.command("CREATE DATABASE IF NOT EXISTS consentmw")
    chdb_client.command(create_table_sql())
    row = chdb_client.query_dicts(
        "SELECT partition_key, create_table_query FROM system.tables "
        "WHERE database = 'consentmw' AND name = 'requests'",
        {},
    )[0]
    assert row["partition_key"] == "toYYYYMM(time)"
    assert "TTL" not in row["create_table_query"]
    for bad in ("x; DROP TABLE y", "a.b.c", "1abc", ""):
        with pytest.raises(ValueError, match="table must be"):
            create_table_sql(bad)


def months_of_records(client: ChdbClient, months: list[str]) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS consentmw")
    client.command(create_table_sql())
    rows = "\n".join(
        json.dumps(rec("/", datetime.fromisoformat(f"{m}-15T12:00:00+00:00").timestamp()))
        for m in months
    )
    client.command(
        "INSERT INTO consentmw.requests SETTINGS date_time_input_format = 'best_effort', "
        f"input_format_skip_unknown_fields = 1 FORMAT JSONEachRow {rows}"
    )


def partitions(client: ChdbClient) -> list[str]:
    return [
        r["p"]
        for r in client.query_dicts(
            "SELECT DISTINCT partition_id AS p FROM system.parts WHERE database = 'consentmw' "
            "AND table = 'requests' AND active ORDER BY p",
            {},
        )
    ]


def test_purge_drops_expired_months_unless_a_legal_hold(
    tmp_path: Path, chdb_client: ChdbClient
) -> None:
    months_of_records(chdb_client, ["2024-12", "2025-04", "2025-05", "2025-06", "2026-11"])
    now = datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()  # cutoff 2025-05-20
    (tmp_path / "LEGAL_HOLD").write_text("litigation 2026-17\n")
    held = purge_partitions(chdb_client, 18, now=now, hold_directory=tmp_path)
    assert held.held == "litigation 2026-17" and held.expired == ["202412", "202504"]
    assert held.dropped == [] and len(partitions(chdb_client)) == 5
    flagged = purge_partitions(chdb_client, 18, now=now, legal_hold="audit")
    assert flagged.held == "audit" and len(partitions(chdb_client)) == 5
    (tmp_path / "LEGAL_HOLD").unlink()
    dry = purge_partitions(chdb_client, 18, now=now, hold_directory=tmp_path, dry_run=True)
    assert dry.expired == ["202412", "202504"] and len(partitions(chdb_client)) == 5
    done = purge_partitions(chdb_client, 18, now=now, hold_directory=tmp_path)
    assert done.dropped == ["202412", "202504"] and done.rows == 2
    assert partitions(chdb_client) == ["202505", "202506", "202611"]
    assert purge_partitions(chdb_client, 3, now=now).dropped == ["202505", "202506"]
    for months in (2, 121, "18"):
        with pytest.raises(ValueError, match="retention"):
            purge_partitions(chdb_client, months, now=now)  # type: ignore[arg-type]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from consentmw.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=180,
        check=False,
    )


def test_cli_schema_report_and_purge_through_chdb(tmp_path: Path) -> None:
    out = cli("analytics", "clickhouse", "schema", "--table", "stats.hits")
    assert out.returncode == 0 and "PARTITION BY toYYYYMM(time)" in out.stdout
    assert "CREATE TABLE IF NOT EXISTS stats.hits" in out.stdout
    logs = tmp_path / "logs"
    logs.mkdir()
    noon = datetime(2026, 11, 30, 12, tzinfo=timezone.utc).timestamp()
    write_lines(logs / "requests-2026-11-30.jsonl", [rec("/priser", noon)] * 3)
    old = datetime(2016, 1, 15, tzinfo=timezone.utc).timestamp()
    write_lines(logs / "requests-2016-01-15.jsonl", [rec("/old", old)])
    data_dir = tmp_path / "chdb"
    client = ChdbClient(str(data_dir))
    load(client, logs)
    client.close()
    url = f"chdb://{data_dir}"
    out = cli("analytics", "clickhouse", "report", "--url", url,
              "--from", "2026-11-30", "--to", "2026-11-30", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pages"] == [{"path": "/priser", "pageviews": 3}]
    (logs / "LEGAL_HOLD").write_text("police request")
    out = cli("analytics", "clickhouse", "purge", "--url", url, "--log-dir", str(logs))
    assert out.returncode == 0, out.stderr
    assert "suspended by legal hold (police request)" in out.stdout
    (logs / "LEGAL_HOLD").unlink()
    out = cli("analytics", "clickhouse", "purge", "--url", url, "--log-dir", str(logs),
              "--retention-months", "120")  # fmt: skip
    assert out.returncode == 0 and "dropped partition 201601" in out.stdout, out.stderr
    for bad in (
        ["purge", "--url", url, "--retention-months", "2"],
        ["report", "--url", "mysql://x"],
        ["report", "--url", url, "--table", "a;b"],
    ):
        out = cli("analytics", "clickhouse", *bad)
        assert out.returncode == 2 and "Traceback" not in out.stderr, (bad, out.stderr)
    # no server there, or a table that does not exist: a message, not a traceback
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://reader:s3cret@127.0.0.1:{s.getsockname()[1]}"
    for bad in (["report", "--url", closed], ["report", "--url", url, "--table", "no.such"]):
        out = cli("analytics", "clickhouse", *bad)
        assert out.returncode == 1 and "consentmw: ClickHouse: " in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "s3cret" not in out.stderr
    out = cli("analytics", "clickhouse", "purge", "--url", url, "--table", "no.such")
    assert out.returncode == 2 and "there is no table no.such" in out.stderr, out.stderr


def test_open_client_refuses_unknown_urls_and_hides_passwords() -> None:
    with pytest.raises(ValueError, match="must start with"):
        open_client("postgres://x")
    pytest.importorskip("clickhouse_connect", reason="the clickhouse extra is in the test extra")
    from consentmw.analytics.clickhouse import ConnectClient

    assert "s3cret" not in repr(ConnectClient(object()))


VECTOR = ROOT / "examples" / "clickhouse" / "vector.toml"


def vector_config() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    return tomllib.loads(VECTOR.read_text())


def remap_keys(config: dict[str, Any]) -> list[str]:
    import re

    source = config["transforms"]["consentmw_rows"]["source"]
    return re.findall(r'^\s+"(\w+)": record\.(\w+),?$', source, re.M)


def test_vector_config_reads_the_period_files_and_sends_the_schema_columns() -> None:
    from fnmatch import fnmatch

    from consentmw.analytics.clickhouse.schema import DEFAULT_TABLE, TABLE_COLUMNS

    config = vector_config()
    source = config["sources"]["consentmw_requests"]
    assert source["type"] == "file" and source["read_from"] == "beginning"

    def read(path: str) -> bool:
        return any(fnmatch(path, g) for g in source["include"]) and not any(
            fnmatch(path, g) for g in source["exclude"]
        )

    for name in ("requests-2026-11-20.jsonl", "requests-2026-11-20T13.jsonl"):
        assert read(f"/var/log/consentmw/{name}") and read(f"/var/log/consentmw/web-2/{name}")
    for name in ("requests-2026-11-20.jsonl.gz", ".tmp-1-2-requests-2026-11-20.jsonl.gz",
                 "requests-2026-11-20.parquet", "LEGAL_HOLD"):  # fmt: skip
        assert not read(f"/var/log/consentmw/{name}"), name
    remap = config["transforms"]["consentmw_rows"]
    assert remap["inputs"] == ["consentmw_requests"] and remap["drop_on_error"] is True
    keys = remap_keys(config)
    assert [k for k, v in keys if k == v] == list(TABLE_COLUMNS)  # no ip, isp, bytes ...
    sink = config["sinks"]["clickhouse"]
    assert sink["inputs"] == ["consentmw_rows"] and sink["type"] == "clickhouse"
    assert f"{sink['database']}.{sink['table']}" == DEFAULT_TABLE
    assert sink["date_time_best_effort"] is True and sink["skip_unknown_fields"] is True
    assert sink["auth"]["password"] == "${CLICKHOUSE_PASSWORD}"  # never a literal secret
    assert sink["acknowledgements"]["enabled"] is True


def test_what_vector_sends_gives_the_duckdb_report(
    tmp_path: Path, chdb_client: ChdbClient
) -> None:
    """The remap's object per line, inserted as the sink inserts (JSONEachRow, best-effort
    times, absent keys to their defaults), gives the embedded engine's report."""
    import gzip

    _generator().generate(tmp_path, 6000, days=3, visitors=True, end=END, seed=3)
    keys = [k for k, _ in remap_keys(vector_config())]
    rows = []
    for path in sorted(tmp_path.glob("requests-*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            for line in fh:
                record = json.loads(line)
                rows.append(json.dumps({k: record.get(k) for k in keys}))
    chdb_client.command("CREATE DATABASE IF NOT EXISTS consentmw")
    chdb_client.command(create_table_sql())
    chdb_client.command(
        "INSERT INTO consentmw.requests SETTINGS date_time_input_format = 'best_effort', "
        "input_format_skip_unknown_fields = 1 FORMAT JSONEachRow " + "\n".join(rows)
    )
    first = END - timedelta(days=2)
    duck = build_report(tmp_path, first, END, timezone="Europe/Oslo").to_dict()
    house = ClickHouseEngine(chdb_client).report(first, END, timezone="Europe/Oslo").to_dict()
    same(duck, house)
    assert duck["pageviews"] > 500


def test_clickhouse_connect_over_http_gives_the_duckdb_report_and_purges(
    tmp_path: Path,
) -> None:
    """The clickhouse-connect adapter, its HTTP transport and Native reader, against
    ClickHouse's HTTP interface (served by chDB in this process)."""
    pytest.importorskip("clickhouse_connect", reason="the clickhouse extra is in the test extra")
    from consentmw.analytics.clickhouse import ConnectClient
    from tests.clickhouse_http import ChdbHTTPServer

    logs = tmp_path / "logs"
    _generator().generate(logs, 8000, days=3, visitors=True, end=END, seed=5)
    server = ChdbHTTPServer(str(tmp_path / "chdb"))
    try:
        client = open_client(server.url)
        assert isinstance(client, ConnectClient)
        client.command("CREATE DATABASE IF NOT EXISTS consentmw")
        client.command(create_table_sql())
        client.command(
            f"INSERT INTO consentmw.requests SELECT * FROM file('{logs}/requests-*', "
            "'JSONEachRow') SETTINGS date_time_input_format = 'best_effort', "
            "input_format_skip_unknown_fields = 1"
        )
        first = END - timedelta(days=2)
        duck = build_report(logs, first, END, timezone="Europe/Oslo").to_dict()
        engine = ClickHouseEngine(client)
        house = engine.report(first, END, timezone="Europe/Oslo").to_dict()
        same(duck, house)
        now = datetime(2028, 12, 1, tzinfo=timezone.utc).timestamp()
        (logs / "LEGAL_HOLD").write_text("case 7")
        held = purge_partitions(client, 18, now=now, hold_directory=logs)
        assert held.held == "case 7" and held.expired == ["202611"] and not held.dropped
        done = purge_partitions(client, 18, now=now)
        assert done.dropped == ["202611"] and engine.report(first, END).to_dict()["pageviews"] == 0
        client.close()
    finally:
        server.close()


async def test_the_dashboard_reads_a_clickhouse_engine(
    tmp_path: Path, chdb_client: ChdbClient
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from consentmw.analytics import Dashboard
    from tests.test_analytics_dashboard import get

    noon = datetime(2026, 11, 30, 12, tzinfo=timezone.utc).timestamp()
    write_lines(tmp_path / "requests-2026-11-30.jsonl", [rec("/fra-clickhouse", noon)] * 2)
    load(chdb_client, tmp_path)
    dash = Dashboard(engine=ClickHouseEngine(chdb_client), authorize=lambda r: True)
    page = await get(Starlette(routes=[Mount("/s", dash)]), "/s/?from=2026-11-30&to=2026-11-30")
    assert page.status_code == 200 and "/fra-clickhouse" in page.text
    with pytest.raises(ValueError, match="one of them"):
        Dashboard(str(tmp_path), engine=ClickHouseEngine(chdb_client), authorize=lambda r: True)
