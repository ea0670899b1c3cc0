"""The benchmark code must keep running: a few iterations, no timing assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MICRO = Path(__file__).resolve().parents[1] / "benchmarks" / "micro.py"


def test_micro_quick_prints_its_table() -> None:
    out = subprocess.run(
        [sys.executable, str(MICRO), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "microbenchmark" in out.stdout
    assert "us/op" in out.stdout
    assert "ASGI request: ConsentMiddleware, 20 KB HTML, undecided" in out.stdout
