"""``python -m bench --quick`` end to end: it starts its own stack (SQLite), measures every
item and writes every section of its JSON with positive numbers.

The numbers themselves are not judged: this machine may be busy with other work, and the
targets are for a full run. What is checked is that each measurement was really taken.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def run_on_sqlite(module: str, *flags: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <flags>`` with no ``OPENLINES_*`` variables (so on SQLite);
    fails the test unless it exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINES_")}
    done = subprocess.run(
        [sys.executable, "-m", module, *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_quick_bench_measures_every_item(tmp_path: Path):
    out = tmp_path / "bench.json"
    done = run_on_sqlite("bench", "--quick", "--json", str(out), timeout=900)
    results = json.loads(out.read_text())
    assert "openlines benchmark" in done.stdout  # the table was printed

    fixed = results["offer_latency"]["fixed"]
    assert fixed["sent"] > 0 and fixed["done"] > 0
    for summary in ("latency_from_accepted", "latency_from_sent", "request"):
        assert all(positive(fixed[summary][key]) for key in ("p50_ms", "p95_ms", "p99_ms"))
    nearest = results["offer_latency"]["max_sustained"]
    assert positive(nearest["issued_rate"]) and positive(nearest["latency_from_accepted"]["p99_ms"])

    for action in ("accept", "reply", "close"):
        assert positive(results["actions"][action]["count"])
        assert positive(results["actions"][action]["p50_ms"])
        assert positive(results["actions"][action]["p99_ms"])

    throughput = results["throughput"]
    assert positive(throughput["openlines_per_s"]) and positive(throughput["bare_per_s"])
    assert positive(throughput["ratio"])

    timer = results["timer"]
    assert timer["open"] == timer["dialogs"] > 0  # quiet ones and probes
    assert timer["offered"] == timer["probes"] > 0
    assert positive(timer["moved"])
    for summary in ("lag_observed", "lag_workflow_clock"):
        assert all(positive(timer[summary][key]) for key in ("p50_s", "p99_s", "max_s"))

    for script in ("typical", "with_transfer"):
        assert positive(results["history"][script]["events"])
    assert results["history"]["with_transfer"]["by_type"]

    memory = results["memory"]
    assert memory["open_dialogs"] == timer["open"]
    for process in ("worker", "api", "temporal"):
        assert positive(memory[process]["peak_rss_mb"])
        assert positive(memory[process]["rss_mb_with_open"])


def test_cpu_breakdown_counts_each_process(tmp_path: Path):
    """``python -m bench.cpu``: CPU per item for every process of both systems, measured."""
    out = tmp_path / "cpu.json"
    flags = ["--rate", "3", "--bare-rate", "3", "--duration", "2", "--json", str(out)]
    done = run_on_sqlite("bench.cpu", *flags, timeout=300)
    results = json.loads(out.read_text())
    assert "CPU ms per item" in done.stdout
    openlines, bare = results["openlines"]["cpu_ms"], results["bare"]["cpu_ms"]
    assert all(positive(openlines[name]) for name in ("worker", "api", "temporal", "total"))
    assert all(positive(bare[name]) for name in ("bare", "temporal", "total"))
    assert results["openlines"]["sent"] == 6 and results["bare"]["sent"] == 6
