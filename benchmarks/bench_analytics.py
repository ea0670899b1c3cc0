"""Analytics engine benchmark: a 30-day report over generated request logs.

    python benchmarks/gen_requestlog.py /tmp/an1m --records 1000000
    python benchmarks/gen_requestlog.py /tmp/an10m --records 1000000 --repeat 10
    python benchmarks/bench_analytics.py /tmp/an1m /tmp/an10m [--engine duckdb-json ...]

Each measurement runs in a fresh child process (so peak RSS is that run's alone) and
prints wall time, CPU time (user + system of the child: on a shared machine, wall time
also counts waiting for a core) and peak RSS (``ru_maxrss``). Engines:

- ``duckdb-json``: the report (``consentmw.analytics.report``) on the JSON-lines files;
- ``duckdb-columnar``: the same report after the Parquet copies of closed periods exist
  (the copy is made once per period, timed separately as ``columnar-sync``);
- ``chdb-json``: chDB (ClickHouse in-process) on the JSON-lines files, the report's main
  grouping query in ClickHouse SQL (one scan, ``GROUPING SETS``);
- ``chdb-load``: every period file into a MergeTree table of the ClickHouse schema
  (``consentmw.analytics.clickhouse``), in a chDB directory beside the data: what the
  shipper does over the days, done at once;
- ``chdb-mergetree``: the whole report (``ClickHouseEngine``) on that table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = (
    "duckdb-json", "columnar-sync", "duckdb-columnar", "chdb-json", "chdb-load", "chdb-mergetree",
)  # fmt: skip

CHILD = r"""
import json, resource, sys, time
from datetime import date
sys.path.insert(0, {src!r})
engine, directory, first, last = {engine!r}, {directory!r}, {first!r}, {last!r}
t0 = time.perf_counter()
if engine in ("duckdb-json", "duckdb-columnar"):
    from consentmw.analytics.report import build_report
    r = build_report(directory, date.fromisoformat(first), date.fromisoformat(last)).to_dict()
    summary = {{"pageviews": r["pageviews"], "sources": r["sources"]}}
elif engine in ("chdb-load", "chdb-mergetree"):
    from consentmw.analytics.clickhouse import ChdbClient, ClickHouseEngine, create_table_sql
    client = ChdbClient(directory + ".chdb")
    if engine == "chdb-load":
        client.command("CREATE DATABASE IF NOT EXISTS consentmw")
        client.command(create_table_sql())
        client.command(
            f"INSERT INTO consentmw.requests SELECT * FROM file('{{directory}}/requests-*', "
            "'JSONEachRow') SETTINGS date_time_input_format = 'best_effort', "
            "input_format_skip_unknown_fields = 1, max_threads = 2")
        client.command("OPTIMIZE TABLE consentmw.requests FINAL")
        n = client.query_dicts("SELECT count() AS n FROM consentmw.requests", {{}})[0]["n"]
        summary = {{"rows": n}}
    else:
        r = ClickHouseEngine(client).report(
            date.fromisoformat(first), date.fromisoformat(last)).to_dict()
        summary = {{"pageviews": r["pageviews"]}}
elif engine == "columnar-sync":
    from consentmw.analytics.columnar import sync
    s = sync(directory)
    summary = {{"written": len(s.written)}}
else:
    import chdb
    cols = ("time String, method String, path String, status Int32, browser String, "
            "os String, device String, referrer Nullable(String), consent String, "
            "kind Nullable(String), utm_source Nullable(String), utm_medium Nullable(String), "
            "utm_campaign Nullable(String), country Nullable(String), visitor Nullable(String)")
    q = f'''
      SELECT path, referrer, utm_source, browser, os, device, country,
             toDate(parseDateTime64BestEffort(time)) AS d, count() AS n
      FROM file('{{directory}}/requests-*.jsonl*', 'JSONEachRow', '{{cols}}')
      WHERE kind = 'page'
      GROUP BY GROUPING SETS ((path), (referrer), (utm_source), (browser), (os), (device),
                              (country), (d), ())
      SETTINGS input_format_skip_unknown_fields = 1, max_threads = 2,
               input_format_allow_errors_ratio = 0.01'''
    res = chdb.query(q, "JSONCompact")
    summary = {{"rows": len(json.loads(res.bytes())["data"])}}
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
cpu = ru.ru_utime + ru.ru_stime
print("RESULT " + json.dumps({{"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                             "rss_mb": round(ru.ru_maxrss / 1024), **summary}}))
"""


def run_child(engine: str, directory: Path, first: date, last: date) -> dict:
    code = CHILD.format(
        src=str(ROOT / "src"),
        engine=engine,
        directory=str(directory),
        first=first.isoformat(),
        last=last.isoformat(),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        return {"error": (out.stdout + out.stderr)[-300:]}
    return json.loads(lines[-1][len("RESULT ") :])


def count_records(directory: Path) -> int:
    import duckdb

    files = [str(p) for p in sorted(directory.glob("requests-*.jsonl*"))]
    sql = (
        "SELECT count(*) FROM read_json(?, format = 'newline_delimited', "
        "columns = {'kind': 'VARCHAR'})"
    )
    return duckdb.connect().execute(sql, [files]).fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directories", nargs="+", type=Path)
    parser.add_argument("--engine", action="append", choices=ENGINES)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    engines = args.engine or list(ENGINES)
    last = date.today()
    first = last - timedelta(days=args.days - 1)
    results = []
    for directory in args.directories:
        # work on a copy: the columnar copies must not linger in the source data set
        with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
            work = Path(tmp) / directory.name
            shutil.copytree(directory, work)
            records = count_records(work)
            for engine in engines:
                row = {"data": directory.name, "records": records, "engine": engine}
                row.update(run_child(engine, work, first, last))
                results.append(row)
                if not args.json:
                    print(
                        f"{row['data']:>10} {records:>10,} {engine:<16} "
                        + " ".join(f"{k}={v}" for k, v in row.items() if k not in
                                   ("data", "records", "engine", "sources"))
                        + (f" sources={row['sources']}" if "sources" in row else ""),
                        flush=True,
                    )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
