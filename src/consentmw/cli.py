"""The ``consentmw`` command: the demo site, configuration check, logs and receipts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

DEMO_EXAMPLES = """\
examples:
  consentmw demo                       # http://127.0.0.1:8000/
  consentmw demo --port 8080 --records-url sqlite:///demo.db
"""

CHECK_EXAMPLES = """\
Builds ConsentMiddleware and RequestLogMiddleware from CONSENTMW_* variables as an app
would at start-up, and reports every error (including CONSENTMW_* names nothing reads);
exits 2 if there is one. Nothing is connected to.

example:
  CONSENTMW_SECRET_KEY=... CONSENTMW_LOG_ROTATION=hourly consentmw check
"""


def _demo(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    try:
        import uvicorn
    except ImportError:
        print("consentmw: the demo needs uvicorn: pip install 'consentmw[demo]'", file=sys.stderr)
        return 1

    from . import demo
    from .privacy.logconfig import logging_config

    app = demo.create_app(
        google_analytics_id=args.ga_id or demo.DEMO_GA_ID,
        log_directory=args.log_dir,
        records_url=args.records_url,
        dashboard=True,
    )
    base = f"http://{args.host}:{args.port}"
    print(f"consentmw demo on {base}/  (Ctrl+C stops)", flush=True)
    if args.log_dir and find_spec("duckdb"):
        print(
            f"analytics dashboard: {base}{demo.DASHBOARD_PATH}/  user {demo.DASHBOARD_USER!r}, "
            f"password {demo.DASHBOARD_PASSWORD!r}",
            flush=True,
        )
    # uvicorn's own access log, masked and without query strings, as the request log.
    uvicorn.run(app, host=args.host, port=args.port, log_config=logging_config())
    return 0


def _check(args: argparse.Namespace) -> int:
    """Validate the configuration from CONSENTMW_* variables and print it, redacted."""
    import json

    from .envcheck import check_environment

    result = check_environment()
    if result.shown:
        print(json.dumps(result.shown, indent=2, ensure_ascii=False))
    for note in result.notes:
        print(f"consentmw: note: {note}", file=sys.stderr)
    for error in result.errors:
        print(f"consentmw: configuration error: {error}", file=sys.stderr)
    if result.errors:
        print(f"consentmw: {len(result.errors)} configuration error(s)", file=sys.stderr)
        return 2
    print("consentmw: configuration OK", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consentmw", description="Cookie consent and privacy-preserving request logs."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    demo = sub.add_parser(
        "demo",
        help="run the demo site",
        description="Run the demo site (needs the demo extra: pip install 'consentmw[demo]').",
        epilog=DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument(
        "--ga-id",
        default=os.environ.get("CONSENTMW_DEMO_GA_ID"),
        help="Google Analytics measurement id (default G-DEMO000000)",
    )
    demo.add_argument("--log-dir", default="demo-logs", help="request log directory")
    demo.add_argument("--records-url", default="sqlite:///demo-receipts.db")
    demo.set_defaults(func=_demo)
    check = sub.add_parser(
        "check",
        help="validate CONSENTMW_* settings and print them",
        description="Validate CONSENTMW_* settings and print them, secrets redacted.",
        epilog=CHECK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.set_defaults(func=_check)
    for module in ("consentmw.requestlog.cli", "consentmw.records.cli", "consentmw.analytics.cli"):
        try:
            register = __import__(module, fromlist=["register_cli"]).register_cli
        except ImportError:  # an optional part that is not installed
            continue
        register(sub)
    return parser


def _quiet_broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly, as a Unix tool killed by SIGPIPE.

    Python's recipe (library/signal.html, "Note on SIGPIPE"): point stdout at devnull so
    the flush at interpreter exit does not raise a second time.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what the shell reports for such a tool


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here for short outputs
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # configuration errors say what to fix
        print(f"consentmw: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
