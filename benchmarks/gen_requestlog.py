"""Generate a realistic request-log directory for the analytics benchmark and tests.

    python benchmarks/gen_requestlog.py OUT --records 1000000 [--days 30] [--hourly]
        [--visitors] [--plain] [--seed 1]

Records are what the request log writes (every field, in order), spread over ``--days``
days ending today (UTC) with a day/night curve: pages, assets, API calls, consent routes,
redirects, errors and bots in a typical mix; page paths Zipf-distributed over 5,000 pages;
referrer hosts, campaign parameters on a few landing pages, browsers, systems, devices
and a ``country`` field (present in the generated data; the request log itself writes no
country). ``--visitors`` adds a ``visitor`` key per simulated visitor and day (the shape
the visitor-key feature will write). Closed days are gzip-compressed (level 6, as the
request log's compressor) and a few of them also have a short plain file beside, as when
a worker writes after compression; today's file stays plain. ``--plain`` keeps all plain.
``--repeat 10`` writes every file's records ten times (as ten gzip members), which makes
the 10-million-record set in a minute instead of most of an hour.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

# kind, share of all requests, method, status choices
KIND_MIX = [
    ("page", 0.30), ("asset", 0.38), ("api", 0.10), ("bot", 0.13),
    ("consent", 0.02), ("redirect", 0.02), ("error", 0.05),
]  # fmt: skip
BROWSERS = [
    # browser, versions, os, os versions, device, weight
    ("Chrome", ["120", "121", "122"], "Windows", ["10"], "desktop", 30),
    ("Chrome", ["120", "121"], "Mac OS X", ["10.15"], "desktop", 8),
    ("Chrome Mobile", ["120", "121"], "Android", ["13", "14"], "mobile", 16),
    ("Mobile Safari", ["17"], "iOS", ["17.1", "17.2"], "mobile", 18),
    ("Mobile Safari", ["16"], "iOS", ["16.6"], "tablet", 3),
    ("Safari", ["17"], "Mac OS X", ["10.15"], "desktop", 5),
    ("Firefox", ["121", "122"], "Windows", ["10"], "desktop", 6),
    ("Firefox", ["121"], "Ubuntu", [None], "desktop", 2),
    ("Edge", ["120", "121"], "Windows", ["10"], "desktop", 7),
    ("Samsung Internet", ["23"], "Android", ["13"], "mobile", 3),
    ("Other", [None], "Other", [None], "other", 2),
]
BOTS = [("Googlebot", "2", "Other"), ("bingbot", "2", "Other"), ("Other", None, "Other")]
REFERRERS = [
    (None, 55), ("www.google.com", 18), ("www.google.no", 6), ("www.bing.com", 3),
    ("duckduckgo.com", 2), ("www.facebook.com", 3), ("l.facebook.com", 2), ("t.co", 1),
    ("www.linkedin.com", 1), ("www.vg.no", 1), ("www.finn.no", 1), ("example.org", 7),
]  # fmt: skip
CAMPAIGNS = [
    ("newsletter", "email", "spring sale"), ("facebook", "social", "pling launch"),
    ("google", "cpc", "sms gateway"), ("linkedin", "social", None), ("partner.no", None, None),
]  # fmt: skip
COUNTRIES = [("NO", 70), ("SE", 8), ("DK", 5), ("DE", 4), ("GB", 4), ("US", 6), (None, 3)]
LANGS = [("nb", 65), ("en", 25), ("nn", 5), (None, 5)]
CONSENT = [("undecided", 45), ("granted", 35), ("denied", 20)]
# relative traffic per UTC hour (Norwegian day: quiet night, peaks late morning/evening)
HOURS = [2, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 9, 9, 9, 8, 8, 8, 8, 9, 10, 9, 7, 5, 3]
SECTIONS = ["products", "sms", "pling", "gateway", "help", "news", "about", "prices", "api-docs"]


def _weights(pairs: list[tuple[object, float]]) -> tuple[list[object], list[float]]:
    return [p[0] for p in pairs], [float(p[1]) for p in pairs]


def page_paths(n: int, rng: random.Random) -> list[str]:
    paths = ["/"] + [f"/{s}" for s in SECTIONS]
    while len(paths) < n:
        section = rng.choice(SECTIONS)
        paths.append(f"/{section}/{rng.choice(['article', 'page', 'guide'])}-{len(paths)}")
    return paths


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(n)]


def build_pools(rng: random.Random, visitors: bool) -> dict[str, object]:
    """Pre-rendered JSON fragments: each line is a few of these joined."""
    dumps = json.dumps
    agents = []
    for browser, versions, os_name, os_versions, device, weight in BROWSERS:
        for v in versions:
            for ov in os_versions:
                frag = (
                    f'"browser":{dumps(browser)},"browser_version":{dumps(v)},'
                    f'"os":{dumps(os_name)},"os_version":{dumps(ov)},"device":{dumps(device)}'
                )
                agents.append((frag, weight / len(versions) / len(os_versions)))
    bots = [
        f'"browser":{dumps(b)},"browser_version":{dumps(v)},"os":{dumps(o)},'
        f'"os_version":null,"device":"bot"'
        for b, v, o in BOTS
    ]
    return {
        "agents": _weights(agents),
        "bots": bots,
        "pages": page_paths(5000, rng),
        "page_w": zipf_weights(5000),
        "assets": [f"/static/{n}" for n in ("site.css", "app.js", "logo.svg", "font.woff2")]
        + [f"/img/photo-{i}.webp" for i in range(60)]
        + ["/favicon.ico", "/robots.txt"],
        "apis": ["/api/prices", "/api/search", "/api/status", "/api/sms/send"],
        "referrers": _weights(REFERRERS),
        "countries": _weights(COUNTRIES),
        "langs": _weights(LANGS),
        "consent": _weights(CONSENT),
        "visitors": visitors,
    }


def day_lines(day: date, n: int, pools: dict, rng: random.Random) -> list[str]:
    dumps = json.dumps
    kinds, kind_w = _weights(KIND_MIX)
    agents, agent_w = pools["agents"]
    refs, ref_w = pools["referrers"]
    countries, country_w = pools["countries"]
    langs, lang_w = pools["langs"]
    consents, consent_w = pools["consent"]
    pages, page_w = pools["pages"], pools["page_w"]
    hours = rng.choices(range(24), HOURS, k=n)
    kind_of = rng.choices(kinds, kind_w, k=n)
    agent_of = rng.choices(agents, agent_w, k=n)
    page_of = rng.choices(pages, page_w, k=n)
    ref_of = rng.choices(refs, ref_w, k=n)
    country_of = rng.choices(countries, country_w, k=n)
    lang_of = rng.choices(langs, lang_w, k=n)
    consent_of = rng.choices(consents, consent_w, k=n)
    seconds = sorted(h * 3600 + rng.random() * 3600 for h in hours)
    prefix = day.isoformat() + "T"
    visitors = pools["visitors"]
    population = max(n // 6, 1)  # about six requests per visitor and day
    lines = []
    rand = rng.random
    for i in range(n):
        s = seconds[i]
        whole = int(s)
        stamp = (
            f"{prefix}{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}."
            f"{int((s - whole) * 1000):03d}Z"
        )
        kind = kind_of[i]
        method, status, utm = "GET", 200, (None, None, None)
        ref = None
        if kind == "page":
            path = page_of[i]
            ref = ref_of[i]
            if ref is None and rand() < 0.05:
                utm = CAMPAIGNS[int(rand() * len(CAMPAIGNS))]
            if rand() < 0.08:
                status = 304
        elif kind == "asset":
            path = pools["assets"][int(rand() * len(pools["assets"]))]
            ref = "example.org"
        elif kind == "api":
            path = pools["apis"][int(rand() * 4)]
            method = "POST" if path.endswith("send") else "GET"
        elif kind == "bot":
            path = page_of[i] if rand() < 0.7 else "/robots.txt"
        elif kind == "consent":
            path, method, status = "/_consent", "POST", 303
        elif kind == "redirect":
            path, status = "/old" + page_of[i], 301
        else:
            path, status = page_of[i] + "-missing", 404 if rand() < 0.9 else 500
        agent = pools["bots"][int(rand() * 3)] if kind == "bot" else agent_of[i]
        parts = [
            f'{{"time":"{stamp}","ip":"198.51.0.0","isp":null,"asn":null,',
            f'"method":"{method}","path":{dumps(path)},"status":{status},',
            f'"bytes":{int(rand() * 40000)},"duration_ms":{rand() * 50:.3f},{agent},',
            f'"referrer":{dumps(ref)},"consent":"{consent_of[i]}",',
            f'"language":{dumps(lang_of[i])},"kind":"{kind}",',
            f'"utm_source":{dumps(utm[0])},"utm_medium":{dumps(utm[1])},',
            f'"utm_campaign":{dumps(utm[2])},"country":{dumps(country_of[i])}',
        ]
        if visitors:
            parts.append(f',"visitor":"{day.toordinal():x}{int(rand() * population):08x}"')
        parts.append("}\n")
        lines.append("".join(parts))
    return lines


def generate(
    out: Path,
    records: int,
    days: int = 30,
    hourly: bool = False,
    visitors: bool = False,
    plain: bool = False,
    seed: int = 1,
    end: date | None = None,
    repeat: int = 1,
) -> list[Path]:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    pools = build_pools(rng, visitors)
    end = end or datetime.now(timezone.utc).date()
    first = end - timedelta(days=days - 1)
    per_day = [records // days + (1 if i < records % days else 0) for i in range(days)]
    written = []
    for i in range(days):
        day = first + timedelta(days=i)
        lines = day_lines(day, per_day[i], pools, rng)
        closed = day != end and not plain
        groups: dict[str, list[str]] = {}
        for line in lines:
            key = day.isoformat() + ("T" + line[20:22] if hourly else "")
            groups.setdefault(key, []).append(line)
        for key, group in groups.items():
            base = out / f"requests-{key}.jsonl"
            data = "".join(group).encode()
            if closed:
                # a worker that wrote just after the compression left a short plain file
                late = 3 if i % 7 == 3 else 0
                cut = len(data) - sum(len(x) for x in group[len(group) - late :])
                member = gzip.compress(data[:cut], compresslevel=6)
                with open(f"{base}.gz", "wb") as fh:
                    for _ in range(repeat):  # gzip members concatenate: N times the records
                        fh.write(member)
                written.append(Path(f"{base}.gz"))
                if late:
                    base.write_text("".join(group[-late:]))
                    written.append(base)
            else:
                base.write_bytes(data * repeat)
                written.append(base)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--hourly", action="store_true")
    parser.add_argument("--visitors", action="store_true")
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="write each file's records N times (fast large data sets: --records is per copy)",
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    files = generate(
        args.out,
        args.records,
        args.days,
        args.hourly,
        args.visitors,
        args.plain,
        args.seed,
        repeat=args.repeat,
    )
    size = sum(f.stat().st_size for f in files)
    print(
        f"{args.records * args.repeat} records in {len(files)} files, {size / 1e6:.1f} MB on disk, "
        f"{time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
