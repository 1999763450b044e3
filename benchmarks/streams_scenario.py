"""The stream-scale scenario: `python -m benchmarks.run --scenario streams [--clients 2000]`.

LLM traffic is few, long requests: what decides how many machines a team needs is concurrent
streams per core, memory per stream, and how much one stream's chunks delay another's. So the
upstream paces its streams (first token after 300 ms, then 50 content chunks 20 ms apart), and
`--clients` clients (2,000) start a stream each within a quarter of a second; every fourth one
leaves after 25 chunks. For each server (`routemw serve --server ...`, one worker, auth on):

- streams completed, clients that left, errors (anything else: a status, a cut, an in-band error);
- gateway CPU per stream (user + system time of its processes over the run, per client);
- RSS before the run (after a warm-up), at its peak, and 2 s after, and the peak's growth per
  stream open at that moment;
- time to first token p50/p99, and what it adds over the same run against the upstream directly;
- event-loop lag: the latency of `GET /v1/models` (answered by the gateway alone) sent back to
  back from another process during the run, p50/p99, against its p50 while idle.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

FIRST_DELAY = 0.3
INTERVAL = 0.02
CHUNKS = 50
LEAVE_EVERY = 4
LEAVE_AFTER = 25


def streams_scenario(clients: int, servers: list[str], *, smoke: bool = False) -> int:
    from benchmarks import run as bench

    python = sys.executable
    processes: list[subprocess.Popen[bytes]] = []
    upstream_port = bench.free_port()
    upstream_args = ("--chunks", str(CHUNKS), "--latency", str(INTERVAL), "--first-delay", str(FIRST_DELAY))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Tell me a story."}], "stream": True}
    print(
        f"routemw stream scale: {clients} concurrent clients, 1 in {LEAVE_EVERY} leaving after {LEAVE_AFTER} chunks; "
        f"upstream: first token after {FIRST_DELAY * 1000:.0f} ms, then {CHUNKS} chunks {INTERVAL * 1000:.0f} ms "
        f"apart; one worker; {bench.os.cpu_count()} cores\n"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        bench.started(
            processes, python, "-m", "benchmarks.upstream", "--port", str(upstream_port), *upstream_args
        ) as upstream,
    ):
        bench.wait_for_port(upstream_port, upstream)
        direct = _streams(upstream_port, body, [], clients)
        direct_ttft = _ttfts(direct)
        rows = []
        for server in servers:
            port = bench.free_port()
            config = Path(tmp) / f"routemw-{server}.json"
            config.write_text(json.dumps(bench.routemw_config(upstream_port, port, anthropic=False)))
            command = (python, "-m", "routemw", "serve", "--config", str(config), "--server", server)
            with bench.started(processes, *command, "--log-level", "warning", "--no-access-log") as gateway:
                bench.wait_for_port(port, gateway)
                rows.append((server, _measure(gateway.pid, port, body, clients, smoke)))
        print(
            "| server | streams completed | left | errors | CPU ms/stream | RSS MB before / peak / after "
            "| KB per open stream (peak open) | TTFT p50 / p99 ms | +TTFT p50 / p99 ms over direct "
            "| loop lag p50 / p99 ms (idle p50) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        d50, d99 = _percentile(direct_ttft, 0.5), _percentile(direct_ttft, 0.99)
        for server, m in rows:
            t50, t99 = _percentile(m["ttft"], 0.5), _percentile(m["ttft"], 0.99)
            print(
                f"| {server} | {m['outcomes'].get('done', 0)} | {m['outcomes'].get('left', 0)} | {m['errors']} "
                f"| {m['cpu_ms']:.2f} | {m['rss'][0]:.0f} / {m['rss'][1]:.0f} / {m['rss'][2]:.0f} "
                f"| {m['kb_per_stream']:.0f} ({m['peak_open']}) | {t50:.0f} / {t99:.0f} "
                f"| {t50 - d50:+.1f} / {t99 - d99:+.1f} "
                f"| {_percentile(m['lag'], 0.5):.1f} / {_percentile(m['lag'], 0.99):.1f} ({m['idle']:.1f}) |"
            )
            for outcome, count in m["outcomes"].items():
                if outcome.startswith("error"):
                    print(f"  {server}: {count} x {outcome}")
        direct_errors = sum(1 for r in direct["results"] if str(r["outcome"]).startswith("error"))
        print(f"\ndirect to the upstream: TTFT p50 {d50:.0f} ms, p99 {d99:.0f} ms, errors {direct_errors}")
    return 0


def _measure(pid: int, port: int, body: dict[str, Any], clients: int, smoke: bool) -> dict[str, Any]:
    from benchmarks import run as bench

    auth = [f"authorization: Bearer {bench.CLIENT_KEY}"]
    _streams(port, body, auth, min(clients, 50))  # warm-up: pools, caches, code paths
    time.sleep(1.0)
    idle = _probe(port, 1.0)
    before_rss, before_cpu = bench.rss_mb(pid), bench.cpu_seconds(pid)
    peak = [before_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], bench.rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    run_seconds = 0.25 + FIRST_DELAY + CHUNKS * INTERVAL + (1.0 if smoke else 3.0)
    probe = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.streams", "--port", str(port), "--probe", "--seconds", str(run_seconds)],
        cwd=bench.ROOT,
        stdout=subprocess.PIPE,
    )
    result = _streams(port, body, auth, clients)
    lag = orjson.loads(probe.communicate(timeout=120)[0])["latencies"]
    done.set()
    sampler.join()
    cpu = bench.cpu_seconds(pid) - before_cpu
    time.sleep(2.0)
    after_rss = bench.rss_mb(pid)
    outcomes = Counter(str(r["outcome"]) for r in result["results"])
    errors = sum(count for outcome, count in outcomes.items() if outcome.startswith("error"))
    return {
        "outcomes": outcomes,
        "errors": errors,
        "cpu_ms": 1000 * cpu / clients,
        "rss": (before_rss, peak[0], after_rss),
        "peak_open": result["peak_open"],
        "kb_per_stream": 1024 * (peak[0] - before_rss) / max(result["peak_open"], 1),
        "ttft": _ttfts(result),
        "lag": [x * 1000 for x in lag],
        "idle": _percentile([x * 1000 for x in idle], 0.5),
    }


def _streams(port: int, body: dict[str, Any], headers: list[str], clients: int) -> dict[str, Any]:
    from benchmarks import run as bench

    command = [sys.executable, "-m", "benchmarks.streams", "--port", str(port), "--clients", str(clients)]
    command += ["--body", json.dumps(body, separators=(",", ":"))]
    command += ["--leave", str(LEAVE_EVERY), "--leave-after", str(LEAVE_AFTER)]
    for header in headers:
        command += ["--header", header]
    output = subprocess.run(command, cwd=bench.ROOT, capture_output=True, check=True, timeout=300).stdout
    result: dict[str, Any] = orjson.loads(output)
    return result


def _probe(port: int, seconds: float) -> list[float]:
    from benchmarks import run as bench

    command = [sys.executable, "-m", "benchmarks.streams", "--port", str(port), "--probe", "--seconds", str(seconds)]
    output = subprocess.run(command, cwd=bench.ROOT, capture_output=True, check=True, timeout=60).stdout
    latencies: list[float] = orjson.loads(output)["latencies"]
    return latencies


def _ttfts(result: dict[str, Any]) -> list[float]:
    return [r["ttft"] * 1000 for r in result["results"] if r["ttft"] is not None]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]
