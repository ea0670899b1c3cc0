"""The report as a terminal table and as one self-contained HTML page.

The page has inline CSS and inline SVG charts, no script and no external request, so it
can be mailed, archived or served under a strict CSP; it fits a 375 px wide screen.
Everything printed is escaped: paths, hosts and campaign names come from visitors.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["CSS", "render_body", "render_html", "render_table"]

_RANKINGS = (
    ("Top pages", "pages", "path"),
    ("Entry pages", "entry_pages", "path"),
    ("Referrers", "referrers", "host"),
    ("Campaign sources", ("utm", "sources"), "value"),
    ("Campaign media", ("utm", "media"), "value"),
    ("Campaigns", ("utm", "campaigns"), "value"),
    ("Browsers", "browsers", "name"),
    ("Operating systems", "systems", "name"),
    ("Devices", "devices", "name"),
    ("Countries", "countries", "code"),
)
_CONSENT = (
    ("banner_shown", "Banner shown"),
    ("accepted", "Accepted all"),
    ("rejected", "Rejected all"),
    ("custom", "Custom choice"),
    ("signal_refusals", "Refused by browser signal"),
    ("withdrawn", "Withdrawn"),
)


def _get(data: dict[str, Any], key: str | tuple[str, str]) -> list[dict[str, Any]] | None:
    if isinstance(key, tuple):
        return data[key[0]][key[1]]
    return data[key]


def _label(value: object, field: str) -> str:
    if value is None:
        return "(direct / none)" if field == "host" else "(unknown)"
    return str(value)


def _count(row: dict[str, Any]) -> int:
    return int(row.get("pageviews", row.get("visits", row.get("visitors", 0))))


def _visits(data: dict[str, Any]) -> tuple[str, str]:
    """Visits and bounce rate as shown, "n/a" without visitor keys."""
    if data.get("visits") is None:
        return "n/a", "n/a"
    rate = data.get("bounce_rate")
    return str(data["visits"]), "n/a" if rate is None else f"{100 * rate:.0f} %"


def render_table(data: dict[str, Any]) -> str:
    p = data["period"]
    visitors = "n/a (visitor keys off)" if data["visitors"] is None else data["visitors"]
    lines = [
        f"Analytics {p['from']} .. {p['to']} ({p['timezone']})",
        f"Page views: {data['pageviews']}    Visitors: {visitors}    "
        "Visits: {}    Bounce rate: {}".format(*_visits(data)),
        "Requests by kind: " + ", ".join(f"{k} {v}" for k, v in data["requests"].items()),
    ]
    for title, key, field in _RANKINGS:
        rows = _get(data, key)
        lines += ["", title, "-" * len(title)]
        if rows is None:
            lines.append("(not recorded)")
            continue
        if not rows:
            lines.append("(none)")
        for row in rows:
            name = _label(row[field], field)
            shown = name if len(name) <= 50 else name[:47] + "..."
            lines.append(f"{shown:<50}  {_count(row):>9}")
    lines += ["", "Page views per day", "------------------"]
    lines += [f"{d['date']}  {d['pageviews']:>9}" for d in data["series"]["day"]]
    c = data["consent"]
    lines += ["", f"Consent (from {c['source']})", "-------"]
    lines += [f"{label:<28} {c['totals'][key]:>9}" for key, label in _CONSENT]
    undecided = sum(d["pageviews"] for d in c["undecided_pageviews"])
    lines.append(f"{'Page views while undecided':<28} {undecided:>9}")
    return "\n".join(lines) + "\n"


CSS = """
:root{color-scheme:light;--ink:#1d1d1f;--muted:#4a4a4f;--bar:#2f5f9e;--line:#d0d4da}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);
 background:#fff;margin:0 auto;padding:1rem;max-width:64rem}
h1{font-size:1.35rem;margin:.2rem 0 .6rem}h2{font-size:1.08rem;margin:1.6rem 0 .5rem}
.figures{display:flex;flex-wrap:wrap;gap:.6rem;margin:0;padding:0;list-style:none}
.figures li{border:1px solid var(--line);border-radius:6px;padding:.5rem .8rem;min-width:9rem}
.figures b{display:block;font-size:1.4rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:0 1.5rem}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th,td{padding:3px 4px;text-align:left;border-bottom:1px solid var(--line)}
th.n,td.n{text-align:right;width:5.5rem;font-variant-numeric:tabular-nums}
td.k{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.k span{display:block;height:4px;background:var(--bar);border-radius:2px;margin-top:2px}
svg{display:block;width:100%;height:auto}
.axis{display:flex;justify-content:space-between;gap:.5rem;margin:.2rem 0 0;
 font-size:.85rem;color:var(--muted)}
.muted{color:var(--muted)}
a{color:#1a4f8b}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _ranking(title: str, rows: list[dict[str, Any]] | None, field: str) -> str:
    if rows is None:
        return (
            f"<section><h2>{_esc(title)}</h2>"
            '<p class="muted">Not recorded (needs visitor keys or a country field).</p>'
            "</section>"
        )
    if not rows:
        return f'<section><h2>{_esc(title)}</h2><p class="muted">None.</p></section>'
    peak = max(_count(r) for r in rows) or 1
    unit = "Page views" if "pageviews" in rows[0] else "Visits"
    body = "".join(
        f'<tr><td class="k" title="{_esc(_label(r[field], field))}">'
        f"{_esc(_label(r[field], field))}"
        f'<span style="width:{100.0 * _count(r) / peak:.1f}%"></span></td>'
        f'<td class="n">{_count(r)}</td></tr>'
        for r in rows
    )
    return (
        f"<section><h2>{_esc(title)}</h2><table><thead><tr>"
        f'<th scope="col">{_esc(field.capitalize())}</th><th scope="col" class="n">{unit}</th>'
        f"</tr></thead><tbody>{body}</tbody></table></section>"
    )


def bar_chart(values: list[tuple[str, int]], label: str, height: int = 160) -> str:
    """Vertical bars, one per (x label, value); an accessible inline SVG."""
    width = 640
    n = max(len(values), 1)
    peak = max((v for _, v in values), default=0) or 1
    slot = width / n
    bars = []
    for i, (x, v) in enumerate(values):
        h = (height - 24) * v / peak
        bars.append(
            f'<rect x="{i * slot + slot * 0.1:.1f}" y="{height - 18 - h:.1f}" '
            f'width="{slot * 0.8:.1f}" height="{h:.1f}" fill="#2f5f9e">'
            f"<title>{_esc(x)}: {v}</title></rect>"
        )
    return (
        f'<svg viewBox="0 0 {width} {height - 17}" role="img" aria-label="{_esc(label)}">'
        f"<title>{_esc(label)}</title>"
        f'<line x1="0" y1="{height - 18}" x2="{width}" y2="{height - 18}" stroke="#8a8f98"/>'
        + "".join(bars)
        + "</svg>"
        + _axis(values, peak)
    )


def line_chart(values: list[tuple[str, int]], label: str, height: int = 140) -> str:
    width = 640
    n = max(len(values) - 1, 1)
    peak = max((v for _, v in values), default=0) or 1
    points = " ".join(
        f"{width * i / n:.1f},{height - 18 - (height - 24) * v / peak:.1f}"
        for i, (_, v) in enumerate(values)
    )
    return (
        f'<svg viewBox="0 0 {width} {height - 17}" role="img" aria-label="{_esc(label)}">'
        f"<title>{_esc(label)}</title>"
        f'<line x1="0" y1="{height - 18}" x2="{width}" y2="{height - 18}" stroke="#8a8f98"/>'
        f'<polyline fill="none" stroke="#2f5f9e" stroke-width="1.5" points="{points}"/>'
        "</svg>" + _axis(values, peak)
    )


def _axis(values: list[tuple[str, int]], peak: int) -> str:
    """The chart's first and last label and its maximum, as text of the page: inside the
    SVG they would scale with the chart (12 units are 6.5 px on a phone)."""
    first, last = (values[0][0], values[-1][0]) if values else ("", "")
    return (
        f'<p class="axis"><span>{_esc(first)}</span><span>max {peak}</span>'
        f"<span>{_esc(last)}</span></p>"
    )


def _decisions_from(source: str) -> str:
    if source == "none":
        return "Decisions are not counted: the report was made without the receipt store."
    return f"Decisions come from the {_esc(source)}."


def _consent_section(c: dict[str, Any]) -> str:
    totals = "".join(
        f"<tr><th scope=\"row\">{_esc(label)}</th><td class=\"n\">{c['totals'][key]}</td></tr>"
        for key, label in _CONSENT
    )
    undecided = sum(d["pageviews"] for d in c["undecided_pageviews"])
    decisions = [
        (d["date"], d["accepted"] + d["rejected"] + d["custom"] + d["signal_refusals"])
        for d in c["days"]
    ]
    versions = "".join(
        f'<tr><td class="k">{_esc(k)}</td><td class="n">{v}</td></tr>'
        for k, v in c["policy_versions"].items()
    ) or '<tr><td class="k muted">none</td><td class="n">0</td></tr>'
    languages = "".join(
        f'<tr><td class="k">{_esc(k)}</td><td class="n">{v}</td></tr>'
        for k, v in c["languages"].items()
    ) or '<tr><td class="k muted">none</td><td class="n">0</td></tr>'
    return (
        '<section><h2 id="consent">Consent</h2>'
        f'<p class="muted">{_decisions_from(c["source"])} Page views while undecided '
        "come from the request log.</p>"
        '<div class="grid"><table><tbody>'
        f"{totals}<tr><th scope=\"row\">Page views while undecided</th>"
        f'<td class="n">{undecided}</td></tr></tbody></table>'
        '<table><thead><tr><th scope="col">Policy version</th>'
        f'<th scope="col" class="n">Decisions</th></tr></thead><tbody>{versions}</tbody>'
        '</table><table><thead><tr><th scope="col">Language</th>'
        f'<th scope="col" class="n">Decisions</th></tr></thead><tbody>{languages}</tbody>'
        "</table></div>"
        + bar_chart(decisions, "Consent decisions per day")
        + "</section>"
    )


def render_body(data: dict[str, Any], title: str = "Analytics") -> str:
    """The page's content (the dashboard wraps it with its period picker)."""
    p = data["period"]
    visitors = "n/a" if data["visitors"] is None else data["visitors"]
    kinds = data["requests"]
    parts = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="muted">{_esc(p["from"])} to {_esc(p["to"])} ({_esc(p["timezone"])}). '
        "No cookies, masked IPs, no query strings.</p>",
        '<ul class="figures">',
        f"<li>Page views<b>{data['pageviews']}</b></li>",
        f"<li>Visitors<b>{_esc(visitors)}</b></li>",
        "<li>Visits<b>{}</b></li><li>Bounce rate<b>{}</b></li>".format(
            *map(_esc, _visits(data))
        ),
        f"<li>Bot requests<b>{kinds.get('bot', 0)}</b></li>",
        f"<li>Errors<b>{kinds.get('error', 0)}</b></li>",
        "</ul>",
        "<h2>Page views per day</h2>",
        bar_chart(
            [(d["date"], d["pageviews"]) for d in data["series"]["day"]], "Page views per day"
        ),
        "<h2>Page views per hour</h2>",
        line_chart(
            [(h["hour"][:13].replace("T", " "), h["pageviews"]) for h in data["series"]["hour"]],
            "Page views per hour",
        ),
        '<div class="grid">',
    ]
    for heading, key, field in _RANKINGS:
        parts.append(_ranking(heading, _get(data, key), field))
    parts.append("</div>")
    parts.append(_consent_section(data["consent"]))
    return "\n".join(parts)


def render_html(data: dict[str, Any], title: str = "Analytics") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>"
        + render_body(data, title)
        + "</main></body></html>\n"
    )
