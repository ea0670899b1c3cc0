"""consentmw benchmark suite: one command, ratios against a bare app in the same run.

    python benchmarks/run.py [--quick] [--json out.json]

Starts the app of ``apps.py`` under uvicorn once per stack (bare, consent, full = request
log + consent, naive = BaseHTTPMiddleware reference), loads each with ``wrk`` from a
separate process (an asyncio/httpx load generator when wrk cannot be had), interleaving
the stacks round by round, and prints the median requests/s, the ratio to bare and the
p99 latency of each route; then the in-process microbenchmarks (``micro.py``), the peak
RSS growth while streaming 100 MB of HTML, and the overhead budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from servers import (  # noqa: E402
    BUDGETS,
    LOAD_CPU,
    MARKER,
    SCENARIOS,
    STACK_LABELS,
    Server,
    decided_cookie,
    fetch,
    find_tool,
    pinned,
)

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"p50_us\":%d,\"p99_us\":%d," ..
    "\"errors\":%d,\"status_errors\":%d}\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Cell:
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU (all threads) per request
    errors: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "rps_median": statistics.median(self.rps),
            "rps_runs": [round(x, 1) for x in self.rps],
            "cpu_us_median": round(statistics.median(self.cpu_us), 2),
            "cpu_us_runs": [round(x, 2) for x in self.cpu_us],
            "p99_ms_median": statistics.median(self.p99_ms),
            "errors": self.errors,
        }


# -- servers -------------------------------------------------------------------------------------


def sanity_check(servers: dict[str, Server], cookie: str) -> dict[str, Any]:
    """Every stack answers every route, and injects exactly where it should."""
    sizes: dict[str, Any] = {}
    for sc in SCENARIOS:
        for stack in (s for s in sc.stacks if s in servers):
            status, _, body = fetch(servers[stack].base + sc.path, cookie if sc.decided else None)
            injects = stack != "bare" and sc.path != "/json"
            if status != 200 or (MARKER in body) != injects:
                raise RuntimeError(
                    f"{stack} {sc.path}: status {status}, marker {MARKER in body}, "
                    f"expected {injects}"
                )
            sizes[f"{sc.name} / {stack}"] = len(body)
    return sizes


# -- load generation -----------------------------------------------------------------------------


def find_wrk() -> str | None:
    return find_tool("wrk")


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and all its threads (the log writer included).

    CPU per request barely moves when other processes compete for the machine, unlike
    requests/s, so it is the steadier of the two ratios on a shared 2-core box.
    """
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load:
    def __init__(self, duration: float, connections: int, force_python: bool = False) -> None:
        self.duration = duration
        self.connections = connections
        self.wrk = None if force_python else find_wrk()
        fd, self._lua = tempfile.mkstemp(suffix=".lua", prefix="consentmw-bench-")
        with os.fdopen(fd, "w") as f:
            f.write(WRK_LUA)

    @property
    def tool(self) -> str:
        return "wrk" if self.wrk else "python-httpx"

    def run(
        self, url: str, cookie: str | None, duration: float | None = None, pid: int | None = None
    ) -> dict[str, Any]:
        seconds = duration or self.duration
        cpu_before = process_cpu_seconds(pid)
        if self.wrk:
            cmd = [*pinned(LOAD_CPU), self.wrk, "-t1", f"-c{self.connections}"]
            cmd += [f"-d{seconds:g}s", "--latency"]
            cmd += ["-s", self._lua]
            if cookie:
                cmd += ["-H", f"Cookie: {cookie}"]
        else:
            cmd = [*pinned(LOAD_CPU), sys.executable, str(Path(__file__)), "--loadgen", url]
            cmd += [str(seconds)]
            cmd += [str(self.connections), cookie or ""]
        if self.wrk:
            cmd.append(url)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        for line in out.stdout.splitlines():
            if line.startswith("BENCH "):
                r = json.loads(line[6:])
                cpu = process_cpu_seconds(pid) - cpu_before
                return {
                    "cpu_us": cpu / max(r["requests"], 1) * 1e6,
                    "rps": r["requests"] / (r["duration_us"] / 1e6),
                    "p99_ms": r["p99_us"] / 1000.0,
                    "errors": r["errors"] + r["status_errors"],
                }
        raise RuntimeError(f"load generator failed: {out.stdout}\n{out.stderr}")

    def close(self) -> None:
        os.unlink(self._lua)


def python_loadgen(url: str, seconds: float, connections: int, cookie: str) -> None:
    """Fallback closed-loop load generator (much slower than wrk: ratios get compressed)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    size = 0

    async def worker(client: Any, deadline: float) -> None:
        nonlocal errors, size
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                r = await client.get(url)
                size += len(r.content)
                if r.status_code >= 400:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    async def main() -> float:
        headers = {"Cookie": cookie} if cookie else {}
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(headers=headers, limits=limits) as client:
            t0 = time.perf_counter()
            deadline = t0 + seconds
            await asyncio.gather(*(worker(client, deadline) for _ in range(connections)))
            return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    r = {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "bytes": size,
        "p50_us": int(p(0.5) * 1e6),
        "p99_us": int(p(0.99) * 1e6),
        "errors": errors,
        "status_errors": 0,
    }
    print("BENCH " + json.dumps(r))


# -- the run -------------------------------------------------------------------------------------


def rss_check(megabytes: int) -> list[dict[str, Any]]:
    results = []
    for mode in ("injector", "middleware"):
        out = subprocess.run(
            [sys.executable, str(HERE / "micro.py"), "--rss", mode, "--mb", str(megabytes)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def budget_lines(
    table: dict[str, dict[str, Any]],
    rss: list[dict[str, Any]],
    instructions: dict[str, dict[str, Any]] | None = None,
) -> list[dict]:
    lines = []
    for label, scenario, stack, minimum in BUDGETS:
        if scenario not in table and scenario not in (instructions or {}):
            continue
        cell = table.get(scenario, {}).get(stack, {})
        ratio, cpu_ratio = cell.get("ratio"), cell.get("cpu_ratio")
        instr = (instructions or {}).get(scenario, {}).get(stack, {}).get("ratio")
        lines.append(
            {
                "budget": f"{label}: >= {minimum:.2f}",
                "value": ratio,
                "pass": ratio is not None and ratio >= minimum,
                "cpu_ratio": cpu_ratio,
                "cpu_pass": cpu_ratio is not None and cpu_ratio >= minimum,
                "instr_ratio": instr,
                "instr_pass": instr is not None and instr >= minimum,
            }
        )
    if not rss:
        return lines
    worst = max(r["growth_kb"] for r in rss)
    lines.append(
        {
            "budget": "streaming 100 MB HTML: peak RSS growth < 5 MB",
            "value": round(worst / 1024, 3),
            "pass": worst < 5 * 1024 and all(r["injected"] for r in rss),
        }
    )
    return lines


def machine() -> dict[str, Any]:
    import starlette
    import uvicorn

    cpu = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "starlette": starlette.__version__,
        "platform": platform.platform(),
        "load_avg_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s runs, 1 round: for debugging")
    parser.add_argument("--json", metavar="PATH", help="write every result as JSON")
    parser.add_argument("--duration", type=float, help="seconds per load run, whole (default 2)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 15)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--http", choices=("h11", "httptools"), default="httptools")
    parser.add_argument("--python-load", action="store_true", help="use the httpx generator")
    parser.add_argument("--skip-load", action="store_true", help="only micro + RSS")
    parser.add_argument("--skip-micro", action="store_true", help="only the load phase")
    parser.add_argument(
        "--skip-instructions", action="store_true", help="no callgrind instruction counts"
    )
    parser.add_argument(
        "--instr-requests", type=int, default=300, help="requests per route under callgrind"
    )
    parser.add_argument("--only", action="append", help="run only this route (repeatable)")
    parser.add_argument(
        "--stack", action="append", choices=list(STACK_LABELS), help="only bare and these stacks"
    )
    parser.add_argument("--loadgen", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        url, seconds, conns, cookie = args.loadgen
        python_loadgen(url, float(seconds), int(conns), cookie)
        return 0

    duration = args.duration or (1.0 if args.quick else 2.0)
    rounds = args.rounds or (1 if args.quick else 15)
    info = machine()
    from apps import calibrate_rows

    rows = calibrate_rows()
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}; Python {info['python']}, "
        f"uvicorn {info['uvicorn']} (--http {args.http}, 1 worker), "
        f"starlette {info['starlette']}; load avg {info['load_avg_at_start'][0]:.2f}"
    )
    table: dict[str, dict[str, Any]] = {}
    settings: dict[str, Any] = {"duration_s": duration, "rounds": rounds, "http": args.http}
    settings.update(connections=args.connections, realistic_rows=rows)
    if not args.skip_load:
        table, settings = load_phase(args, duration, rounds, rows, settings)
        print(format_load(table, settings))

    instr: dict[str, dict[str, Any]] = {}
    if not args.skip_instructions:
        import instructions

        if instructions.available():
            print("\ninstructions per request (callgrind; see instructions.py):", file=sys.stderr)
            n = max(20, args.instr_requests // (10 if args.quick else 1))
            instr = instructions.measure(n, rows, args.only, args.stack, args.http)
            print()
            print(instructions.format_table(instr))
        else:
            print("\nvalgrind not available: no instruction counts", file=sys.stderr)

    micro: list[dict[str, Any]] = []
    rss: list[dict[str, Any]] = []
    if not args.skip_micro:
        from micro import format_table, run_micro

        micro = run_micro(args.quick)
        print()
        print(format_table(micro))
        print()
        rss = rss_check(100)
    for r in rss:
        print(
            f"streaming {r['streamed_mb']} MB HTML through the {r['mode']}: peak RSS "
            f"{r['hwm_before_kb'] / 1024:.1f} -> {r['hwm_after_kb'] / 1024:.1f} MB "
            f"(growth {r['growth_kb'] / 1024:.2f} MB), injected={r['injected']}"
        )

    budgets = budget_lines(table, rss, instr)
    print()
    print(
        "budget                                                  req/s ratio   server-CPU ratio"
        "   instructions"
    )

    def verdict(ok: bool, value: float | None) -> str:
        return "  n/a     " if value is None else f"{'PASS' if ok else 'MISS'} {value:.3f}"

    for b in budgets:
        if "cpu_ratio" not in b:  # the RSS line
            print(f"  {'PASS' if b['pass'] else 'MISS'}  {b['budget']:<50} {b['value']:.3f}")
            continue
        print(
            f"  {b['budget']:<50}  {verdict(b['pass'], b['value'])}   "
            f"{verdict(b['cpu_pass'], b['cpu_ratio'])}         "
            f"{verdict(b['instr_pass'], b['instr_ratio'])}"
        )

    if args.json:
        result = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": info,
            "settings": settings,
            "load": table,
            "instructions": instr,
            "micro": micro,
            "rss": rss,
            "budgets": budgets,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


def load_phase(
    args: argparse.Namespace, duration: float, rounds: int, rows: int, settings: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    log_dir = tempfile.mkdtemp(prefix="consentmw-bench-log-")
    wanted = {"bare", "consent", *(args.stack or STACK_LABELS)}  # consent signs the cookie
    stacks = [s for s in STACK_LABELS if s in wanted]
    servers = {s: Server(s, args.http, rows, log_dir) for s in stacks}
    load = Load(duration, args.connections, args.python_load)
    settings["load_tool"] = load.tool
    cells: dict[tuple[str, str], Cell] = {}
    scenarios = [
        replace(sc, stacks=tuple(s for s in sc.stacks if s in stacks))
        for sc in SCENARIOS
        if not args.only or sc.name in args.only
    ]
    try:
        for server in servers.values():
            server.wait()
        cookie = decided_cookie(servers["consent"])
        settings["response_bytes"] = sanity_check(servers, cookie)
        warm = min(1.0, duration)
        for sc in scenarios:  # warm-up: imports, caches, JIT-free but allocator-warm
            for stack in sc.stacks:
                load.run(servers[stack].base + sc.path, cookie if sc.decided else None, warm)
        for rnd in range(rounds):
            for sc in scenarios:
                order = sc.stacks[rnd % len(sc.stacks) :] + sc.stacks[: rnd % len(sc.stacks)]
                for stack in order:
                    server = servers[stack]
                    r = load.run(
                        server.base + sc.path,
                        cookie if sc.decided else None,
                        pid=server.proc.pid,
                    )
                    cell = cells.setdefault((sc.name, stack), Cell())
                    cell.cpu_us.append(r["cpu_us"])
                    cell.rps.append(r["rps"])
                    cell.p99_ms.append(r["p99_ms"])
                    cell.errors += r["errors"]
            print(f"  round {rnd + 1}/{rounds} done", file=sys.stderr)
        settings["log_bytes_written"] = sum(
            p.stat().st_size for p in Path(log_dir).rglob("*") if p.is_file()
        )
    finally:
        for server in servers.values():
            server.stop()
        load.close()
        shutil.rmtree(log_dir, ignore_errors=True)
    table: dict[str, dict[str, Any]] = {}
    for sc in scenarios:
        base = cells[(sc.baseline if (sc.baseline, "bare") in cells else sc.name, "bare")]
        table[sc.name] = {}
        for stack in sc.stacks:
            cell = cells[(sc.name, stack)]
            s = cell.summary()
            # Paired: each run against bare's run in the same round (seconds apart, so slow
            # drift of the machine cancels), then the median over rounds.
            s["ratio"] = round(statistics.median(map(_div, cell.rps, base.rps)), 3)
            s["cpu_ratio"] = round(statistics.median(map(_div, base.cpu_us, cell.cpu_us)), 3)
            s["ratio_of_medians"] = round(s["rps_median"] / statistics.median(base.rps), 3)
            table[sc.name][stack] = s
    return table, settings


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def format_load(table: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    head = (
        f"load: {settings['load_tool']} -c{settings['connections']} "
        f"{settings['duration_s']:g}s x {settings['rounds']} interleaved rounds; medians, and "
        "x bare = median of per-round ratios to bare; "
        f"realistic page = {settings['realistic_rows']} template rows (~1 ms)"
    )
    lines = [head, ""]
    cols = (
        f"{'route':<16} {'stack':<25} {'req/s':>9} {'x bare':>7} {'p99 ms':>8} "
        f"{'cpu us':>7} {'cpu x':>6}  {'runs (req/s)'}"
    )
    lines += [cols, "-" * len(cols)]
    for scenario, stacks in table.items():
        for stack, s in stacks.items():
            runs = " ".join(f"{x:.0f}" for x in s["rps_runs"])
            err = f"  ERRORS={s['errors']}" if s["errors"] else ""
            lines.append(
                f"{scenario:<16} {STACK_LABELS[stack]:<25} {s['rps_median']:>9.0f} "
                f"{s['ratio']:>7.3f} {s['p99_ms_median']:>8.2f} {s['cpu_us_median']:>7.1f} "
                f"{s['cpu_ratio'] or 0:>6.3f}  {runs}{err}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
