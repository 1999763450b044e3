"""`routemw serve` and `routemw check`."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence

from .app import Gateway
from .config import ProviderTypes, default_document, load_config
from .errors import ConfigError
from .limits.report import describe as describe_limits
from .providers.registry import ProviderRegistry

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="routemw", description="An OpenAI-compatible gateway to many LLM providers.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway on uvicorn")
    serve.add_argument("--config", "-c", help="YAML or JSON config file (default: the embedded default)")
    serve.add_argument("--host", help="bind address (default: server.host from the config)")
    serve.add_argument("--port", type=int, help="port (default: server.port from the config)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--no-access-log", action="store_true", help="do not log a line per request")
    check = commands.add_parser("check", help="validate a config and print its models, routes and providers")
    check.add_argument("--config", "-c", help="YAML or JSON config file (default: the embedded default)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.config)
    return _serve(args.config, args.host, args.port, args.log_level, access_log=not args.no_access_log)


def _serve(config_path: str | None, host: str | None, port: int | None, log_level: str, *, access_log: bool) -> int:
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    try:
        gateway = Gateway.from_config(config_path)
    except ConfigError as exc:
        print(f"routemw: {exc}", file=sys.stderr)
        return 2
    server = gateway.config.server
    bind = host or server.host
    if gateway.config.auth.mode == "none" and bind not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("routemw").warning(
            "routemw: auth is off and the gateway listens on %s: anyone who can reach it can use your providers", bind
        )
    # Everything built so far (modules, config, adapters) lives as long as the process: moving it
    # out of the collector's sight makes each collection cheaper (about 15% less CPU per
    # request measured under load). Only here, where routemw owns the process; a host that
    # mounts the gateway decides this for itself.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        gateway,
        host=bind,
        port=port if port is not None else server.port,
        log_level=log_level,
        lifespan="on",
        access_log=access_log,
    )
    return 0


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
        return 1
    print(f"{config_path or '<embedded default>'}: ok")
    print("providers:")
    for name in sorted(gateway.providers):
        cfg = config.providers.get(name)
        kind = cfg.type if cfg else "echo (built-in)"
        where = f" {cfg.base_url}" if cfg and cfg.base_url else ""
        print(f"  {name}: {kind}{where}")
    print("models:")
    for entry in gateway.catalog:
        routes = ", ".join(t.key for t in entry.targets)
        fallbacks = f"; fallbacks: {', '.join(entry.fallbacks)}" if entry.fallbacks else ""
        print(f"  {entry.id}: {routes}{fallbacks}")
    if config.keys or config.prices or gateway.limits.configured(config):  # someone to cap, or prices to show
        print("\n".join(describe_limits(config, gateway.catalog, gateway.limits)))
    print(f"auth: {config.auth.mode}, keys: {len(config.keys)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
