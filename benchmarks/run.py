"""Run the benchmark: `python -m benchmarks.run` (add `--smoke` for a few hundred requests).

It starts, each in its own process on loopback, the fake upstream, the bare Starlette+aiohttp
proxy (the floor) and routemw (`routemw serve`, auth on, the default pipeline), each of the two
on uvicorn and on granian (when installed), then drives them from a separate load-generator
process. Targets are interleaved within every round so a noisy neighbour hurts all of them
alike, and results are reported as ratios within the run:

- throughput at concurrency 32 (JSON and SSE), its ratio to the floor on uvicorn (what the
  server and routemw together cost or buy) and to the floor on the same server (what routemw
  costs);
- p50/p99 latency at concurrency 1, and the p50 added over calling the upstream directly;
- time to first byte for streams;
- server CPU per request (user + system time of the server's processes over the scenario);
- a soak through routemw with its RSS sampled, reporting growth after warm-up;
- a second routemw (on uvicorn) with limits on the key, the model and the route (high enough
  never to refuse, so every request pays for admission, headers and settlement), and its JSON
  throughput as a ratio to routemw without limits;
- the Messages door (`/v1/messages`): Anthropic in and Anthropic out (the passthrough) and
  Anthropic in, OpenAI out (translated both ways), each as a ratio to routemw's OpenAI
  passthrough in the same run;
- when `redis-server` is on PATH (and the redis package installed): a Redis of its own on a
  free loopback port, the same limits counted in it (`state.redis`), served by one process and
  by `--workers 2`, with the ratios "Redis limits / no limits" and "2 workers / 1 worker".
- a routemw (on uvicorn) with all its telemetry on: the access log in JSON to a file, Prometheus
  metrics, and an OpenTelemetry SDK tracer provider exporting to nothing (`traced_serve`), and
  its JSON throughput as a ratio to routemw with all of it off;
- with `--baseline DIR`, routemw (on uvicorn) served from another checkout too (`DIR` on
  `PYTHONPATH`), to compare a change against the code before it within one run.
- the Responses door (JSON and SSE) and the embeddings door (16 inputs, JSON only), with
  their server CPU per request as a ratio to routemw's chat passthrough in the same run.

`--scenario telemetry` runs only the targets the telemetry ratio needs (direct, the floor and
routemw on uvicorn, routemw with telemetry, and the baseline if given).

`--scenario streams` is the stream-scale run instead (`streams_scenario`): 2,000 concurrent
slow streams, a quarter of the clients leaving mid-stream, on each server.

Everything it starts is stopped when it ends, however it ends.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.streams_scenario import streams_scenario

ROOT = Path(__file__).resolve().parents[1]
CLIENT_KEY = "sk-bench-client-key-0000000000"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


def tree(pid: int) -> list[int]:
    """`pid` and its descendants: granian serves from worker processes under the one started."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids += tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system time of `pid` and its live descendants (the workers of `--workers N`)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS + sum(cpu_seconds(int(child)) for child in children)


def rss_mb(pid: int) -> float:
    total = 0
    for each in tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def raise_open_files() -> None:
    """Thousands of sockets per process in the stream scenario: the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by what it starts


@contextmanager
def started(
    processes: list[subprocess.Popen[bytes]], *command: str, stdout: Any = subprocess.DEVNULL, env: Any = None
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=stdout, env=env)
    processes.append(process)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@dataclass
class Target:
    name: str
    port: int
    pid: int  # the process whose CPU counts for this target
    model: str
    headers: list[str] = field(default_factory=list)
    path: str = "/v1/chat/completions"
    server: str = "uvicorn"
    streams: bool = True  # False: a JSON-only endpoint, left out of the SSE round


@dataclass
class Tally:
    count: int = 0
    errors: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)

    def add(self, result: dict[str, Any], cpu: float) -> None:
        self.count += result["count"]
        self.errors += result["errors"]
        self.elapsed += result["elapsed"]
        self.cpu += cpu
        self.latencies += result["latencies"]
        self.firsts += result["firsts"]

    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, values: Sequence[float], q: float) -> float:
        if not values:
            return 0.0
        ordered = sorted(values)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


def load(target: Target, *, stream: bool, concurrency: int, count: int) -> tuple[dict[str, Any], float]:
    # The same request in either protocol (Anthropic's also needs `max_tokens`, so both send it).
    body: dict[str, Any] = {"model": target.model, "max_tokens": 64}
    body["messages"] = [{"role": "user", "content": "Say something."}]
    if target.path == "/v1/embeddings":
        body = {"model": target.model, "input": [f"A passage of text to embed, number {i}." for i in range(16)]}
    elif target.path == "/v1/responses":
        body = {"model": target.model, "input": "Say something.", "max_output_tokens": 64}
    if stream:
        body["stream"] = True
    command = [
        sys.executable,
        "-m",
        "benchmarks.load",
        "--port",
        str(target.port),
        "--path",
        target.path,
        "--body",
        json.dumps(body, separators=(",", ":")),
        "--concurrency",
        str(concurrency),
        "--count",
        str(count),
        "--seconds",
        "120",
    ]
    for header in target.headers:
        command += ["--header", header]
    before = cpu_seconds(target.pid)
    output = subprocess.run(command, cwd=ROOT, capture_output=True, check=True, timeout=180).stdout
    return orjson.loads(output), cpu_seconds(target.pid) - before


# Limits on every scope, far above what a run sends: each request is admitted and settled.
KEY_LIMITS = {"rpm": 10_000_000, "tpm": 10_000_000_000, "concurrency": 10_000, "budget": {"usd": 1_000_000}}
MODEL_LIMITS = {"rpm": 10_000_000, "tpm": 10_000_000_000}
ROUTE_LIMITS = {"rpm": 10_000_000, "tpm": 10_000_000_000}


def routemw_config(
    upstream: int,
    port: int,
    anthropic: bool,
    *,
    limited: bool = False,
    redis: str | None = None,
    metrics: bool = False,
) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "up": {"type": "openai", "base_url": f"http://127.0.0.1:{upstream}/v1", "api_key": "sk-bench-upstream"}
    }
    models: dict[str, Any] = {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]}}
    embedding = {"provider": "up", "model": "text-embedding-3-small", "capabilities": {"embeddings": True}}
    models["text-embedding-3-small"] = {"routes": [embedding]}
    providers["gemini"] = {"type": "gemini", "base_url": f"http://127.0.0.1:{upstream}", "api_key": "sk-bench-g"}
    models["gemini"] = {"routes": [{"provider": "gemini", "model": "gemini-2.5-flash"}]}
    if anthropic:
        providers["claude"] = {"type": "anthropic", "base_url": f"http://127.0.0.1:{upstream}", "api_key": "sk-bench-a"}
        models["claude"] = {"routes": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}
    key: dict[str, Any] = {"name": "bench", "key": CLIENT_KEY, "models": ["*"]}
    if limited:
        key["limits"] = KEY_LIMITS
        models["gpt-4o"] = {
            "limits": MODEL_LIMITS,
            "routes": [{"provider": "up", "model": "gpt-4o", "limits": ROUTE_LIMITS}],
        }
        models.pop("claude", None)
        models.pop("gemini", None)
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port},
        "providers": providers,
        "models": models,
        "keys": [key],
        "auth": {"mode": "keys"},
        **({"metrics": {"prometheus": True}} if metrics else {}),
    }
    if redis is not None:
        # A generous timeout: on a loaded 2-core machine a slow answer must not switch to local counting.
        config["state"] = {"redis": {"url": redis, "prefix": "bench:"}, "timeout": 1.0}
    return config


def has_redis() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    return shutil.which("redis-server") is not None


def redis_targets(
    stack: ExitStack,
    processes: list[subprocess.Popen[bytes]],
    tmp: str,
    upstream_port: int,
    anthropic: bool,
    auth: list[str],
) -> list[Target]:
    """A Redis of the benchmark's own, and routemw with limits counted in it: one process and two workers."""
    python = sys.executable
    redis_port = free_port()
    redis = stack.enter_context(
        started(
            processes,
            *(shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", tmp),
        )
    )
    wait_for_port(redis_port, redis)
    url = f"redis://127.0.0.1:{redis_port}/0"
    targets = []
    for label, workers in ((REDIS_LIMITED, "1"), (REDIS_WORKERS, "2")):
        port = free_port()
        config = Path(tmp) / f"routemw-redis-{workers}.json"
        config.write_text(json.dumps(routemw_config(upstream_port, port, anthropic, limited=True, redis=url)))
        gateway = stack.enter_context(
            started(
                processes,
                *(python, "-m", "routemw", "serve", "--config", str(config), "--workers", workers),
                *("--log-level", "warning", "--no-access-log"),
            )
        )
        wait_for_port(port, gateway, timeout=60)
        targets.append(Target(label, port, gateway.pid, "gpt-4o", auth))
    time.sleep(2.0)  # --workers: the port answers once the first worker is up; let the second start
    return targets


def has_anthropic() -> bool:
    from routemw.providers.registry import ProviderRegistry

    return "anthropic" in ProviderRegistry.default(plugins=False)


def servers_available() -> list[str]:
    return ["uvicorn", "granian"] if importlib.util.find_spec("granian") else ["uvicorn"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["throughput", "streams", "telemetry"], default="throughput")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=3000, help="requests per target per round at concurrency 32")
    parser.add_argument("--latency-count", type=int, default=500, help="requests per target per round at concurrency 1")
    parser.add_argument("--soak", type=int, default=100_000, help="requests in the soak (0 to skip)")
    parser.add_argument("--clients", type=int, default=2000, help="streams: concurrent clients")
    parser.add_argument("--smoke", action="store_true", help="a few hundred requests: does it all still work")
    parser.add_argument(
        "--limits-only",
        action="store_true",
        help="only what the limits ratio needs: the uvicorn floor, routemw and routemw + limits, JSON only",
    )
    parser.add_argument("--baseline", type=Path, help="another routemw checkout to serve too, for comparison")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.count, args.latency_count, args.soak = 1, 100, 20, 300
        args.clients = 40
    raise_open_files()
    if args.scenario == "streams":
        return streams_scenario(args.clients, servers_available(), smoke=args.smoke)
    anthropic = has_anthropic() and not args.limits_only
    # Every target, or only those one ratio needs (`--scenario telemetry`, `--limits-only`).
    every = args.scenario == "throughput" and not args.limits_only
    servers = servers_available() if every else ["uvicorn"]
    processes: list[subprocess.Popen[bytes]] = []
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        upstream_port = free_port()
        upstream = stack.enter_context(
            started(processes, python, "-m", "benchmarks.upstream", "--port", str(upstream_port))
        )
        wait_for_port(upstream_port, upstream)
        auth = [f"authorization: Bearer {CLIENT_KEY}"]
        targets = [Target("direct", upstream_port, upstream.pid, "gpt-4o")]
        gateways: list[Target] = []
        for server in servers:
            suffix = "" if server == "uvicorn" else f" on {server}"
            port = free_port()
            bare = stack.enter_context(
                started(
                    processes,
                    *(python, "-m", "benchmarks.bare_proxy", "--port", str(port), "--server", server),
                    *("--upstream", f"http://127.0.0.1:{upstream_port}"),
                )
            )
            wait_for_port(port, bare)
            targets.append(Target("bare proxy" + suffix, port, bare.pid, "gpt-4o", server=server))
        for server in servers:
            suffix = "" if server == "uvicorn" else f" on {server}"
            port = free_port()
            config = Path(tmp) / f"routemw-{server}.json"
            config.write_text(json.dumps(routemw_config(upstream_port, port, anthropic)))
            gateway = stack.enter_context(
                started(
                    processes,
                    *(python, "-m", "routemw", "serve", "--config", str(config), "--server", server),
                    *("--log-level", "warning", "--no-access-log"),
                )
            )
            wait_for_port(port, gateway)
            target = Target("routemw" + suffix, port, gateway.pid, "gpt-4o", auth, server=server)
            targets.append(target)
            gateways.append(target)
            if server == "uvicorn" and every:
                targets.append(Target("routemw -> gemini", port, gateway.pid, "gemini", auth, server=server))
            if anthropic and server == "uvicorn" and every:
                targets.append(Target("routemw -> anthropic", port, gateway.pid, "claude", auth, server=server))
                messages = "/v1/messages"
                for name, model in (("messages -> anthropic", "claude"), ("messages -> openai", "gpt-4o")):
                    targets.append(Target(name, port, gateway.pid, model, auth, path=messages, server=server))
            if server == "uvicorn" and every:
                targets.append(Target("responses", port, gateway.pid, "gpt-4o", auth, path="/v1/responses"))
                embeddings = Target("embeddings x16", port, gateway.pid, "text-embedding-3-small", auth)
                embeddings.path, embeddings.streams = "/v1/embeddings", False
                targets.append(embeddings)
        if every or args.limits_only:
            port = free_port()
            config = Path(tmp) / "routemw-limited.json"
            config.write_text(json.dumps(routemw_config(upstream_port, port, anthropic, limited=True)))
            limited = stack.enter_context(
                started(
                    processes,
                    *(python, "-m", "routemw", "serve", "--config", str(config)),
                    *("--log-level", "warning", "--no-access-log"),
                )
            )
            wait_for_port(port, limited)
            targets.append(Target("routemw + limits", port, limited.pid, "gpt-4o", auth, server="uvicorn"))
        if not args.limits_only:
            # All telemetry on: the access log (JSON, to a file), Prometheus, and OpenTelemetry spans.
            port = free_port()
            config = Path(tmp) / "routemw-observed.json"
            config.write_text(json.dumps(routemw_config(upstream_port, port, anthropic, metrics=True)))
            access_log = stack.enter_context((Path(tmp) / "access.log").open("wb"))
            observed = stack.enter_context(
                started(
                    processes,
                    *(python, "-m", "benchmarks.traced_serve", "serve", "--config", str(config)),
                    *("--log-format", "json"),
                    stdout=access_log,
                )
            )
            wait_for_port(port, observed)
            targets.append(Target("routemw + telemetry", port, observed.pid, "gpt-4o", auth, server="uvicorn"))
        if args.baseline:
            port = free_port()
            config = Path(tmp) / "routemw-baseline.json"
            config.write_text(json.dumps(routemw_config(upstream_port, port, anthropic)))
            baseline = stack.enter_context(
                started(
                    processes,
                    *(python, "-m", "routemw", "serve", "--config", str(config)),
                    *("--log-level", "warning", "--no-access-log"),
                    env={**os.environ, "PYTHONPATH": str(args.baseline.resolve())},
                )
            )
            wait_for_port(port, baseline)
            targets.append(Target("routemw (baseline)", port, baseline.pid, "gpt-4o", auth, server="uvicorn"))
        if has_redis() and every:
            targets += redis_targets(stack, processes, tmp, upstream_port, anthropic, auth)
        report(targets, args)
        if args.soak:
            for target in gateways:
                soak(target, args.soak)
    return 0


REDIS_LIMITED = "routemw + limits on Redis"
REDIS_WORKERS = "routemw + limits on Redis, 2 workers"


# What each feature's issue asks of it, for the summary table: (ratio to what, at least or at most).
AIMS: dict[str, str] = {
    "routemw + limits": ">= 0.90x passthrough (JSON)",
    REDIS_LIMITED: ">= 0.75x passthrough (JSON)",
    REDIS_WORKERS: ">= 1.5x one worker on Redis (JSON)",
    "routemw + telemetry": ">= 0.85x passthrough (JSON)",
    "embeddings x16": "CPU <= passthrough's",
}


def report(targets: list[Target], args: argparse.Namespace) -> None:
    print(f"routemw benchmark: {args.rounds} rounds, {os.cpu_count()} cores, loopback, zero-latency upstream\n")
    tallies: dict[bool, dict[str, Tally]] = {}
    for stream in (False,) if args.limits_only else (False, True):
        kind = "SSE (20 chunks)" if stream else "JSON"
        throughput = {t.name: Tally() for t in targets}
        latency = {t.name: Tally() for t in targets}
        for _ in range(args.rounds):
            for target in targets:  # interleaved: every target sees the same noise
                if stream and not target.streams:
                    continue
                result, cpu = load(target, stream=stream, concurrency=32, count=args.count)
                throughput[target.name].add(result, cpu)
            for target in targets:
                if stream and not target.streams:
                    continue
                result, cpu = load(target, stream=stream, concurrency=1, count=args.latency_count)
                latency[target.name].add(result, cpu)
        tallies[stream] = throughput
        floors = {t.server: throughput[t.name].rate() for t in targets if t.name.startswith("bare proxy")}
        direct_p50 = latency["direct"].percentile(latency["direct"].latencies, 0.5)
        print(f"{kind}")
        print(
            "| target | req/s @32 | x floor | x floor, same server | p50 ms @1 | p99 ms @1 | +p50 ms over direct "
            "| TTFB p50 ms @1 | CPU ms/req | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for target in targets:
            t, lat = throughput[target.name], latency[target.name]
            if not t.count:
                continue
            p50 = lat.percentile(lat.latencies, 0.5)
            cpu = 1000 * t.cpu / t.count if t.count and target.name != "direct" else float("nan")
            same = t.rate() / floors[target.server] if floors.get(target.server) else float("nan")
            print(
                f"| {target.name} | {t.rate():,.0f} | {t.rate() / floors['uvicorn']:.2f} | {same:.2f} | {p50:.2f} | "
                f"{lat.percentile(lat.latencies, 0.99):.2f} | {p50 - direct_p50:+.2f} | "
                f"{lat.percentile(lat.firsts, 0.5):.2f} | {cpu:.2f} | {t.errors + lat.errors} |"
            )
        print()
        passthrough = throughput["routemw"].rate()
        chat_cpu = throughput["routemw"].cpu / throughput["routemw"].count if throughput["routemw"].count else 0.0
        for name in ("embeddings x16", "responses"):
            tally = throughput.get(name)
            if tally is not None and tally.count and chat_cpu:
                ratio = tally.cpu / tally.count / chat_cpu
                print(f"{name}: gateway CPU per request = {ratio:.2f}x routemw's chat passthrough")
        for name in ("messages -> anthropic", "messages -> openai"):
            if name in throughput and passthrough:
                print(f"{name}: {throughput[name].rate() / passthrough:.2f}x routemw's OpenAI passthrough @32")
        if not stream and "routemw + limits" in throughput:
            ratio = throughput["routemw + limits"].rate() / throughput["routemw"].rate()
            print(f"limits: JSON req/s @32 with limits on key, model and route = {ratio:.2f}x routemw without")
        if not stream and REDIS_LIMITED in throughput:
            ratio = throughput[REDIS_LIMITED].rate() / throughput["routemw"].rate()
            print(f"limits on Redis: JSON req/s @32 = {ratio:.2f}x routemw without limits")
            ratio = throughput[REDIS_WORKERS].rate() / throughput[REDIS_LIMITED].rate()
            print(f"workers: JSON req/s @32, limits on Redis, --workers 2 = {ratio:.2f}x one worker")
        if "routemw + telemetry" in throughput:
            ratio = throughput["routemw + telemetry"].rate() / throughput["routemw"].rate()
            kind = "SSE streams/s" if stream else "JSON req/s"
            print(f"telemetry: {kind} @32 with access log, Prometheus and OpenTelemetry = {ratio:.2f}x all off")
        if "routemw (baseline)" in throughput:
            ratio = throughput["routemw"].rate() / throughput["routemw (baseline)"].rate()
            print(f"baseline: {'SSE' if stream else 'JSON'} @32 of routemw = {ratio:.2f}x the baseline checkout")
        print()
    features(targets, tallies)


def features(targets: Sequence[Target], tallies: dict[bool, dict[str, Tally]]) -> None:
    """The one table of what each feature costs: every target, JSON and SSE side by side.

    Each rate as a ratio to the floor on uvicorn and to routemw's plain passthrough (also on
    uvicorn), with the server CPU per request; the last column is what the feature's issue aims for.
    """
    print("What each feature costs (throughput @32; ratios to the uvicorn floor and to routemw's passthrough)")
    print(
        "| target | JSON req/s | x floor | x passthrough | CPU ms/req "
        "| SSE streams/s | x floor | x passthrough | CPU ms/stream | aim |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for target in targets:
        if target.name == "direct":
            continue
        cells: list[str] = []
        for stream in (False, True):
            tally = tallies.get(stream, {}).get(target.name)
            floor = tallies.get(stream, {}).get("bare proxy")
            passthrough = tallies.get(stream, {}).get("routemw")
            if tally is None or not tally.count or floor is None or passthrough is None:
                cells += ["", "", "", ""]
                continue
            cells += [
                f"{tally.rate():,.0f}",
                f"{tally.rate() / floor.rate():.2f}",
                f"{tally.rate() / passthrough.rate():.2f}",
                f"{1000 * tally.cpu / tally.count:.2f}",
            ]
        print(f"| {target.name} | {' | '.join(cells)} | {AIMS.get(target.name, '')} |")
    print()


def soak(target: Target, total: int) -> None:
    batch = max(total // 20, 100)
    samples: list[float] = []
    done = 0
    while done < total:
        result, _ = load(target, stream=False, concurrency=32, count=min(batch, total - done))
        done += result["count"]
        samples.append(rss_mb(target.pid))
    warm = samples[min(1, len(samples) - 1)]  # after the first batch: pools, caches and code are warm
    print(
        f"soak: {done:,} requests through {target.name}; RSS {samples[0]:.1f} MB after the first batch, "
        f"{samples[-1]:.1f} MB at the end; growth after warm-up {samples[-1] - warm:+.1f} MB "
        f"(median sample {statistics.median(samples):.1f} MB)"
    )


if __name__ == "__main__":
    sys.exit(main())
