"""`routemw serve` and `routemw check`.

Exit status, the same for both commands: 0 when all went well (for `serve`, a normal stop),
2 for a usage error or a config that cannot be used (the status argparse already gives a usage
error, so one number means "fix how you called it"; nothing was started), and for a server that
is asked for but not installed. A server that cannot start, such as on a port in use, exits
with uvicorn's own status, 3, whichever server it is.

The config comes from `--config`, else from `ROUTEMW_CONFIG`, else the embedded default.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Final

from ._version import __version__
from .app import Gateway
from .config import ProviderTypes, default_document, load_config
from .errors import ConfigError
from .limits.report import describe as describe_limits
from .providers.registry import ProviderRegistry
from .serve import ENGINES
from .telemetry import configure_logging
from .telemetry.multiprocess import metrics_directory

__all__ = ["EXIT_OK", "EXIT_USAGE", "main", "without_userinfo"]

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2  # bad arguments or an unusable config; argparse exits with it too
CONFIG_VARIABLE: Final = "ROUTEMW_CONFIG"
# The authority's userinfo: everything between `scheme://` and the last `@` before the path.
_USERINFO: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config_path: str | None = args.config or os.environ.get(CONFIG_VARIABLE) or None
    if args.command == "check":
        return _check(config_path)
    return _serve(args, config_path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routemw", description="An OpenAI-compatible gateway to many LLM providers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    config_help = f"YAML or JSON config file (default: ${CONFIG_VARIABLE}, else the embedded default)"
    serve = commands.add_parser("serve", help="run the gateway on uvicorn or granian")
    serve.add_argument("--config", "-c", help=config_help)
    serve.add_argument("--host", help="bind address (default: server.host from the config)")
    serve.add_argument("--port", type=int, help="port (default: server.port from the config)")
    serve.add_argument(
        "--server", choices=ENGINES, help="the HTTP server (default: server.engine from the config, else uvicorn)"
    )
    serve.add_argument(
        "--workers", type=_count, default=1, metavar="N", help="worker processes, each with a gateway (default: 1)"
    )
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--no-access-log", action="store_true", help="do not log a line per request")
    serve.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="access log and other log lines (default: text)"
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long requests in flight may still run (default: server.shutdown_timeout)",
    )
    check = commands.add_parser("check", help="validate a config and print its models, routes and providers")
    check.add_argument("--config", "-c", help=config_help)
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, at least 0, got {text!r}")
    return value


def _serve(args: argparse.Namespace, config_path: str | None) -> int:
    from .serve import missing_engine, serve  # the server is imported only for this command

    access = not args.no_access_log
    configure_logging(args.log_format, args.log_level, access=access)  # routemw.access replaces the server's line
    registry = ProviderRegistry.default()
    try:
        config = load_config(
            config_path if config_path is not None else default_document(os.environ), provider_types=registry.types
        )
    except ConfigError as exc:
        print(f"routemw: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Before the gateway is built: prometheus-client chooses its multiprocess mode when it is
    # first imported, here for granian's forked workers and in each spawned uvicorn worker.
    with metrics_directory(args.workers > 1 and config.metrics.prometheus):
        try:
            gateway = Gateway(config, registry=registry, access_log=access)
        except ConfigError as exc:
            print(f"routemw: {exc}", file=sys.stderr)
            return EXIT_USAGE
        server = config.server
        if args.workers > 1:
            from .workers import refusal

            reason = refusal(gateway, args.workers)
            if reason is not None:
                print(f"routemw: {reason}", file=sys.stderr)
                return EXIT_USAGE
        engine: str = args.server or server.engine
        if problem := missing_engine(engine):
            print(f"routemw: {problem}", file=sys.stderr)
            return EXIT_USAGE
        return serve(
            gateway,
            engine=engine,
            workers=args.workers,
            config_path=config_path,
            host=args.host or server.host,
            port=args.port if args.port is not None else server.port,
            log_level=args.log_level,
            access_log=access,
            log_format=args.log_format,
            shutdown_timeout=args.shutdown_timeout if args.shutdown_timeout is not None else server.shutdown_timeout,
        )


def _check(config_path: str | None) -> int:
    registry = ProviderRegistry.default()
    types: ProviderTypes = registry.types
    source = config_path if config_path is not None else default_document(os.environ)
    try:
        config = load_config(source, provider_types=types)
        gateway = Gateway(config, registry=registry)
    except ConfigError as exc:
        print(f"{config_path or '<embedded default>'}: invalid, {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{config_path or '<embedded default>'}: ok")
    print("providers:")
    for name in sorted(gateway.providers):
        cfg = config.providers.get(name)
        kind = cfg.type if cfg else "echo (built-in)"
        where = f" {without_userinfo(cfg.base_url)}" if cfg and cfg.base_url else ""
        print(f"  {name}: {kind}{where}")
    print("models:")
    for entry in gateway.catalog:
        routes = ", ".join(t.key for t in entry.targets)
        fallbacks = f"; fallbacks: {', '.join(entry.fallbacks)}" if entry.fallbacks else ""
        print(f"  {entry.id}: {routes}{fallbacks}")
    if config.keys or config.prices or gateway.limits.configured(config):  # someone to cap, or prices to show
        print("\n".join(describe_limits(config, gateway.catalog, gateway.limits)))
    print(f"auth: {config.auth.mode}, keys: {len(config.keys)}")
    if config.state.redis is not None and not _redis_answers(gateway):
        # With on_error closed every request would get a 503: the config cannot be used as things are.
        return EXIT_USAGE if config.state.on_error == "closed" else EXIT_OK
    return EXIT_OK


def _redis_answers(gateway: Gateway) -> bool:
    """Print whether the configured Redis answers a PING within `state.timeout`."""
    import anyio

    from .state import ping

    state = gateway.config.state
    assert state.redis is not None
    url = without_userinfo(state.redis.url)
    where = f"state: redis {url} (prefix {state.redis.prefix!r}, on_error {state.on_error})"

    async def probe() -> str | None:
        try:
            with anyio.fail_after(state.timeout):
                await ping(gateway.redis)
        except Exception as exc:
            return "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        finally:
            await gateway.redis.aclose()
        return None

    problem = anyio.run(probe)
    print(f"{where}: {'answers' if problem is None else 'does NOT answer (' + problem + ')'}")
    return problem is None


def without_userinfo(url: str) -> str:
    """`url` with any `user:password@` replaced by `***@`: it is a credential, and `check` output is shared."""
    return _USERINFO.sub(r"\1***@", url, count=1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
