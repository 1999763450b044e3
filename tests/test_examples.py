"""Every example in examples/ runs for real: served by uvicorn, called with the `openai` SDK.

The examples are imported from their files (they are not a package and are not installed), the
standalone one runs as its own process, and the plugin example is put on `sys.path` instead of
being pip-installed, then registered by hand and through its declared entry point string.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml
from openai import OpenAI
from servers import LiveServer, free_port, serve

from routemw import ConfigError, Gateway, ProviderRegistry

ROOT = next(d for d in Path(__file__).resolve().parents if (d / "pyproject.toml").is_file())
EXAMPLES = ROOT / "examples"
PLUGIN = EXAMPLES / "custom_provider"
MESSAGES: list[Any] = [{"role": "user", "content": "hello from the examples"}]


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py under a private module name, as `python examples/<name>.py` would load it."""
    module_name = f"routemw_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def sdk(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="sk-anything", max_retries=0, timeout=10.0)


def echo_round_trip(base_url: str) -> tuple[str | None, str]:
    """A plain and a streamed completion through the SDK: (answer, streamed answer)."""
    with sdk(base_url) as client:
        completion = client.chat.completions.create(model="echo", messages=MESSAGES)
        with client.chat.completions.create(model="echo", messages=MESSAGES, stream=True) as stream:
            streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    return completion.choices[0].message.content, streamed


# -- mounted in a host app -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["mount_starlette", "mount_fastapi"])
def mounted_example(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    module = load_example(request.param)
    with serve(module.app, lifespan="on") as live:
        yield live


def test_mounted_example_answers_under_llm(mounted_example: LiveServer) -> None:
    answer, streamed = echo_round_trip(mounted_example.url + "/llm/v1")

    assert answer == "hello from the examples"
    assert streamed == "hello from the examples"
    with sdk(mounted_example.url + "/llm/v1") as client:
        assert [model.id for model in client.models.list()] == ["echo"]


def test_mounted_example_keeps_its_own_routes(mounted_example: LiveServer) -> None:
    with httpx.Client(base_url=mounted_example.url, timeout=10.0) as http:
        health = http.get("/health")
        unmounted = http.get("/v1/models")

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert unmounted.status_code == 404  # the gateway answers under /llm only


# -- a custom middleware -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def middleware_example() -> Iterator[LiveServer]:
    with serve(load_example("custom_middleware").app, lifespan="on") as live:
        yield live


def test_custom_middleware_adds_its_header(middleware_example: LiveServer) -> None:
    with sdk(middleware_example.url + "/v1") as client:
        raw = client.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES)
        with client.chat.completions.with_streaming_response.create(
            model="echo", messages=MESSAGES, stream=True
        ) as streamed:
            stream_header = streamed.headers.get("x-example-model")
            text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed.parse() if chunk.choices)

    assert raw.headers["x-example-model"] == "echo"
    assert raw.parse().choices[0].message.content == "hello from the examples"
    assert stream_header == "echo"
    assert text == "hello from the examples"


def test_custom_middleware_sees_requests_before_routing(middleware_example: LiveServer) -> None:
    with sdk(middleware_example.url + "/v1") as client, pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)

    assert caught.value.code == "model_not_found"
    assert caught.value.response.headers["x-example-model"] == "no-such-model"


def test_custom_middleware_logs_the_model(middleware_example: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custom_middleware")
    with sdk(middleware_example.url + "/v1") as client:
        raw = client.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES)

    request_id = raw.headers["x-request-id"]
    logged = [r.getMessage() for r in caplog.records if r.name == "custom_middleware"]
    assert logged == [f"request {request_id} asks for model echo"]


# -- standalone, as its own process --------------------------------------------------------------


def test_standalone_example_serves_echo(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"}
    env["PORT"] = str(port)
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path / "standalone.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "standalone.py")], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            models = _wait_for_models(process, base_url, log_path, timeout=20.0)
            answer, streamed = echo_round_trip(base_url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10.0)

    assert models == ["echo"]  # no OPENAI_API_KEY, so no OpenAI models
    assert answer == "hello from the examples"
    assert streamed == "hello from the examples"
    assert "Traceback" not in log_path.read_text()


def _wait_for_models(process: subprocess.Popen[bytes], base_url: str, log_path: Path, *, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as http:
        while True:
            if process.poll() is not None:
                pytest.fail(f"standalone example exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                response = http.get(base_url + "/models")
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"standalone example did not answer within {timeout:g}s:\n{log_path.read_text()}")
                time.sleep(0.05)
                continue
            response.raise_for_status()
            return [model["id"] for model in response.json()["data"]]


def test_standalone_example_adds_openai_when_its_key_is_set() -> None:
    standalone = load_example("standalone")
    environ = {"OPENAI_API_KEY": "sk-from-the-environment"}

    gateway = Gateway.from_config(standalone.build_config(environ), environ=environ)

    assert gateway.config.providers["openai"].api_key == "sk-from-the-environment"
    assert [entry.id for entry in gateway.catalog] == ["echo", "gpt-4o-mini"]
    assert [entry.id for entry in Gateway.from_config(standalone.build_config({}), environ={}).catalog] == ["echo"]


# -- a provider plugin ---------------------------------------------------------------------------


@pytest.fixture
def shout_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(PLUGIN))
    return importlib.import_module("routemw_shout")


def _readme_config() -> dict[str, Any]:
    text = (PLUGIN / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config: dict[str, Any] = yaml.safe_load(block)
    return config


def test_plugin_provider_shouts(shout_module: ModuleType) -> None:
    registry = ProviderRegistry.default(plugins=False)
    shout_module.register(registry)
    gateway = Gateway.from_config(_readme_config(), registry=registry, environ={})

    with serve(gateway, lifespan="on") as live, sdk(live.url + "/v1") as client:
        completion = client.chat.completions.create(model="loud-echo", messages=MESSAGES)
        with client.chat.completions.create(model="loud-echo", messages=MESSAGES, stream=True) as stream:
            chunks = list(stream)

    assert completion.choices[0].message.content == "HELLO FROM THE EXAMPLES"
    assert completion.choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "HELLO FROM THE EXAMPLES"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_plugin_entry_point_names_its_register_function(shout_module: ModuleType) -> None:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    target = project["entry-points"]["routemw.providers"]["shout"]
    module_name, _, attribute = target.partition(":")

    assert target == "routemw_shout:register"
    assert callable(getattr(importlib.import_module(module_name), attribute))
    registry = ProviderRegistry.default(plugins=False)
    registry.load([target])  # the same `module:function` call the entry point loader makes
    assert "shout" in registry


def test_plugin_readme_config_needs_the_plugin() -> None:
    with pytest.raises(ConfigError) as caught:
        Gateway.from_config(_readme_config(), registry=ProviderRegistry.default(plugins=False), environ={})
    message = str(caught.value)
    assert "unknown provider type 'shout'; known types: " in message
    known = message.split("known types: ", 1)[1].split("\n", 1)[0].split(", ")
    assert {"echo", "openai"} <= set(known) and "shout" not in known


# -- shipping usage records to a warehouse ---------------------------------------------------------


def test_usage_warehouse_stores_every_record_with_its_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    monkeypatch.setenv("USAGE_DB", str(tmp_path / "usage.db"))
    sys.modules.pop("routemw_example_usage_warehouse", None)
    module = load_example("usage_warehouse")
    try:
        with serve(module.app, lifespan="on") as live:
            answer, streamed = echo_round_trip(live.url + "/v1")
            with sdk(live.url + "/v1") as client, pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="no-such-model", messages=MESSAGES)
            module.warehouse.flush()
            with sqlite3.connect(tmp_path / "usage.db") as database:
                rows = database.execute("select model, provider, status, prompt_tokens, trace from requests").fetchall()
    finally:
        module.warehouse.close()
        sys.modules.pop("routemw_example_usage_warehouse", None)

    assert answer == streamed == "hello from the examples"
    assert [(model, provider, status) for model, provider, status, _, _ in rows] == [
        ("echo", "echo", 200),
        ("echo", "echo", 200),
        ("no-such-model", None, 404),
    ]
    assert all(prompt is not None for _, _, status, prompt, _ in rows if status == 200)
    traces = [orjson.loads(trace) for *_, trace in rows]
    assert traces[0]["attempts"][0] | {"latency_ms": None} == {
        "target": "echo/echo",
        "provider": "echo",
        "upstream_model": "echo",
        "status": 200,
        "code": None,
        "outcome": "answered",
        "latency_ms": None,
    }
    assert traces[2]["attempts"] == [] and traces[2]["model"] == "no-such-model"
