"""Instructions per request of each stack, counted by callgrind: a ratio that does not drift.

    python benchmarks/instructions.py [--http httptools|h11] [--requests 300] [--json out.json]

Wall-clock ratios on a shared 2-vCPU VM swing by +-25 % from one run to the next (even two
identical servers loaded side by side differ by that much), so a 5 % budget cannot be
read off them without hundreds of runs. This counts what the server process executes
instead: each stack of ``apps.py`` runs under uvicorn (httptools or h11, 1 worker) inside
``valgrind --tool=callgrind`` with instrumentation off, so it starts and warms up at
valgrind's base speed; then, per route, instrumentation is switched on for N sequential
keep-alive requests (plus a pause so the request-log writer thread finishes its batch) and
the count is read from a callgrind dump. The count covers the whole server (HTTP parsing,
asyncio, Starlette, the middleware, the log writer), not the client and not the kernel,
and repeats to within about 0.5 %. A ratio of counts is the throughput ratio of a CPU
that runs every instruction at the same speed: a proxy that ignores cache misses and
system calls, which is why ``run.py`` still reports wall-clock figures next to it.

One correction: glibc copies large buffers with ``rep movsb``, which valgrind counts as
one instruction per byte, while the CPU moves 32 to 64 bytes a cycle. Copying a 28 KB
page thus counts as 28,000 instructions (4 % of a request) for what costs about 0.2 %.
So the table shows the count with and without ``memcpy``/``memmove``; the budget is read
from the count without them (the difference is shown, nothing is hidden).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from servers import BUDGETS, SCENARIOS, STACK_LABELS, Server, find_tool  # noqa: E402

#: Fewer requests where one request is heavy, so every route takes seconds, not minutes.
REQUESTS_SCALE = {"/realistic": 0.2, "/stream": 0.1}


def requests(port: int, path: str, n: int, cookie: str | None) -> int:
    """``n`` sequential keep-alive GETs; the bytes received (to check nothing failed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Cookie": cookie} if cookie else {}
    total = 0
    try:
        for _ in range(n):
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: status {response.status}")
            total += len(body)
    finally:
        conn.close()
    return total


class Callgrind:
    """One server under callgrind, instrumentation switched by ``callgrind_control``."""

    def __init__(self, stack: str, rows: int, log_dir: str, out_dir: str, http: str) -> None:
        self.out = Path(out_dir)
        wrapper = (
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_dir}/{stack}.%p",
        )
        self.server = Server(stack, http, rows, log_dir, wrapper=wrapper)
        self.stack = stack

    def control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self.server.proc.pid)],
            check=True,
            capture_output=True,
        )

    def count(self, path: str, n: int, cookie: str | None, settle: float) -> tuple[float, float]:
        """Instructions per request of ``n`` requests to ``path``: all, and in bulk copies."""
        requests(self.server.port, path, max(5, n // 10), cookie)  # warm this route
        self.control("--zero")
        before = set(self.out.glob(f"{self.stack}.*"))
        self.control("--instr=on")
        requests(self.server.port, path, n, cookie)
        time.sleep(settle)  # the request-log writer encodes its batch within 0.2 s
        self.control("--instr=off")
        self.control("--dump")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = set(self.out.glob(f"{self.stack}.*")) - before
            parsed = [_costs(p) for p in new]
            if parsed and all(c is not None for c in parsed):
                total = sum(c[0] for c in parsed if c is not None)
                copies = sum(c[1] for c in parsed if c is not None)
                return total / n, copies / n
            time.sleep(0.2)
        raise RuntimeError(f"no callgrind dump from {self.stack}")

    def stop(self) -> None:
        self.server.stop()


def _costs(path: Path) -> tuple[int, int] | None:
    """(all instructions, those in memcpy/memmove) of a complete callgrind dump, or None.

    Sums each function's own cost lines; a line right after ``calls=`` is the inclusive
    cost of a call and belongs to the callee, so it is skipped.
    """
    try:
        text = path.read_text()
    except OSError:
        return None
    if "\ntotals:" not in text:
        return None  # still being written
    names: dict[str, str] = {}
    own: dict[str, int] = {}
    fn = ""
    skip = False
    for line in text.splitlines():
        head = line[:1]
        if head.isdigit() or head in "+-*":
            if skip:
                skip = False
                continue
            parts = line.split()
            if len(parts) >= 2:
                own[fn] = own.get(fn, 0) + int(parts[1])
        elif line.startswith(("fn=", "cfn=")):
            ref, _, name = line.split("=", 1)[1].partition(" ")
            if name:
                names[ref] = name
            if line.startswith("fn="):
                fn = names.get(ref, ref)
        elif line.startswith("calls="):
            skip = True
    total = sum(own.values())
    copies = sum(v for k, v in own.items() if "memcpy" in k or "memmove" in k)
    return total, copies


def measure(
    n: int,
    rows: int,
    only: list[str] | None = None,
    only_stacks: list[str] | None = None,
    http: str = "httptools",
) -> dict[str, dict[str, Any]]:
    """``{route: {stack: {"instructions": per request, "ratio": bare / stack}}}``."""
    log_dir = tempfile.mkdtemp(prefix="consentmw-bench-log-")
    out_dir = tempfile.mkdtemp(prefix="consentmw-callgrind-")
    scenarios = [sc for sc in SCENARIOS if not only or sc.name in only]
    stacks = [s for s in STACK_LABELS if any(s in sc.stacks for sc in scenarios)]
    stacks = [s for s in stacks if not only_stacks or s in only_stacks or s == "bare"]
    counts: dict[tuple[str, str], tuple[float, float]] = {}
    cookie = consent_cookie()  # every stack, bare too, gets the same request
    try:
        for stack in stacks:  # one server at a time: callgrind runs 50x slower
            server = Callgrind(stack, rows, log_dir, out_dir, http)
            try:
                server.server.wait(timeout=180)
                for sc in scenarios:
                    if stack not in sc.stacks:
                        continue
                    k = max(10, int(n * REQUESTS_SCALE.get(sc.path, 1.0)))
                    ck = cookie if sc.decided else None
                    counts[(sc.name, stack)] = server.count(sc.path, k, ck, settle=1.0)
                    total, copies = counts[(sc.name, stack)]
                    print(f"  {sc.name:<16} {stack:<8} {total:>12,.0f} ({copies:,.0f} in copies)")
            finally:
                server.stop()
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    table: dict[str, dict[str, Any]] = {}
    for sc in scenarios:
        base_name = sc.baseline if (sc.baseline, "bare") in counts else sc.name
        bare = counts.get((base_name, "bare"))
        table[sc.name] = {}
        for stack in sc.stacks:
            if (sc.name, stack) not in counts:
                continue
            total, copies = counts[(sc.name, stack)]
            cell: dict[str, Any] = {
                "instructions": round(total),
                "copy_instructions": round(copies),
                "ratio": None,
                "ratio_with_copies": None,
            }
            if bare:
                cell["ratio"] = round((bare[0] - bare[1]) / (total - copies), 3)
                cell["ratio_with_copies"] = round(bare[0] / total, 3)
            table[sc.name][stack] = cell
    return table


def consent_cookie() -> str:
    """A refuse-all consent cookie signed with the benchmark stacks' key."""
    from apps import build_app, consent_options
    from micro import decided_cookie

    from consentmw import ConsentMiddleware

    return "consentmw=" + decided_cookie(ConsentMiddleware(build_app(), **consent_options()))


def format_table(table: dict[str, dict[str, Any]]) -> str:
    cols = (
        f"{'route':<16} {'stack':<25} {'instr/request':>14} {'in copies':>10} "
        f"{'x bare':>7} {'(w/ copies)':>11}"
    )
    lines = [cols, "-" * len(cols)]
    for route, stacks in table.items():
        for stack, c in stacks.items():
            ratio = "-" if c["ratio"] is None else f"{c['ratio']:.3f}"
            with_copies = "-" if c["ratio_with_copies"] is None else f"{c['ratio_with_copies']:.3f}"
            lines.append(
                f"{route:<16} {STACK_LABELS[stack]:<25} {c['instructions']:>14,} "
                f"{c['copy_instructions']:>10,} {ratio:>7} {with_copies:>11}"
            )
    return "\n".join(lines)


def budget_lines(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label, scenario, stack, minimum in BUDGETS:
        ratio = table.get(scenario, {}).get(stack, {}).get("ratio")
        # What the floor stack (an injector without any checks) reaches on the same route.
        floor = table.get(scenario, {}).get("floor", {}).get("ratio")
        if stack != "consent":
            floor = None
        if ratio is not None:
            out.append(
                {
                    "budget": f"{label}: >= {minimum:.2f}",
                    "value": ratio,
                    "pass": ratio >= minimum,
                    "minimum": minimum,
                    "floor": floor,
                }
            )
    return out


def available() -> bool:
    """valgrind with callgrind_control, installed from Debian when missing (as root)."""

    return find_tool("valgrind") is not None and shutil.which("callgrind_control") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per route (default 300)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", action="append", help="run only this route (repeatable)")
    parser.add_argument("--stack", action="append", help="only bare and this stack (repeatable)")
    parser.add_argument("--http", choices=("h11", "httptools"), default="httptools")
    args = parser.parse_args(argv)
    if not available():
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    from apps import DEFAULT_ROWS

    table = measure(args.requests, DEFAULT_ROWS, args.only, args.stack, args.http)
    print()
    print(format_table(table))
    print()
    for b in budget_lines(table):
        floor, reach = b["floor"], ""
        if floor is not None:
            reach = f"   floor {floor:.3f}"
            if floor < b["minimum"]:
                reach += " (even the floor misses it)"
        print(f"  {'PASS' if b['pass'] else 'MISS'}  {b['budget']:<52} {b['value']:.3f}{reach}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
