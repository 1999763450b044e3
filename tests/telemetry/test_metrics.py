"""Prometheus metrics: a known sequence of requests, then `/metrics` parsed and checked exactly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from fakes import FakeOpenAI, answer_error, drive
from prometheus_client.parser import text_string_to_metric_families
from telemetry_fixtures import AUTH, CHAT, STREAM_CHAT, build, document

from routemw import ConfigError, Gateway
from routemw.telemetry.metrics import DURATION_BUCKETS, TOKEN_BUCKETS, TTFT_BUCKETS
from routemw.usage import UsageRecord

METRICS = {"metrics": {"prometheus": True}}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def of(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


async def scrape(gateway: Any, path: str = "/metrics") -> Samples:
    answer = await drive(gateway, method="GET", path=path)
    assert answer.status == 200
    assert answer.header(
        "content-type",
    ).startswith("text/plain; version=")  # type: ignore[union-attr]
    return parse(answer.body.decode())


async def test_a_known_sequence_reads_back_exactly() -> None:
    records: list[UsageRecord] = []
    up = FakeOpenAI()
    gateway = build(up, doc=document(limits={"rpm": 3}, extra=METRICS), on_usage=records.append)
    await drive(gateway, json=CHAT, headers=AUTH)  # up answers
    up.queue(answer_error(401, code="invalid_api_key"))
    await drive(gateway, json=CHAT, headers=AUTH)  # up refuses its key: backup answers
    await drive(gateway, json=CHAT, headers=[("authorization", "Bearer sk-wrong-0000000000000")])  # 401
    await drive(gateway, json=STREAM_CHAT, headers=AUTH)  # up streams
    assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 429  # the key's rpm: 3
    await drive(gateway, json={**CHAT, "model": "no-such-model"}, headers=AUTH)  # 404
    await drive(gateway, method="GET", path="/v1/models", headers=AUTH)

    samples = await scrape(gateway)

    assert of(samples, "routemw_requests_total") == {
        labels(account="team-a", model="gpt-4o", status_class="2xx"): 3,
        labels(account="team-a", model="gpt-4o", status_class="4xx"): 1,
        labels(account="team-a", model="unknown", status_class="4xx"): 1,
        labels(account="unknown", model="unknown", status_class="4xx"): 1,
        labels(account="unknown", model="unknown", status_class="2xx"): 1,  # GET /v1/models
    }
    assert of(samples, "routemw_upstream_attempts_total") == {
        labels(provider="up", upstream_model="gpt-4o", outcome="answered"): 2,
        labels(provider="up", upstream_model="gpt-4o", outcome="fallback"): 1,
        labels(provider="backup", upstream_model="gpt-4o-mini", outcome="answered"): 1,
    }
    assert of(samples, "routemw_fallbacks_total") == {labels(model="gpt-4o"): 1}
    assert of(samples, "routemw_limit_rejections_total") == {
        labels(kind="requests"): 1,
        labels(kind="tokens"): 0,
        labels(kind="concurrency"): 0,
        labels(kind="budget"): 0,
        labels(kind="tokens_quota"): 0,
    }
    spent = sum(r.cost_usd or 0 for r in records)
    assert spent > 0
    assert of(samples, "routemw_cost_usd_total") == {labels(account="team-a", model="gpt-4o"): pytest.approx(spent)}
    assert value(samples, "routemw_requests_in_flight") == 0
    assert of(samples, "routemw_targets_cooling") == {
        labels(provider="up", upstream_model="gpt-4o"): 0,
        labels(provider="backup", upstream_model="gpt-4o-mini"): 0,
    }
    assert value(samples, "routemw_state_errors_total") == 0

    mini = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}
    big = mini | {"gen_ai_request_model": "gpt-4o"}
    usage = "gen_ai_client_token_usage"
    assert value(samples, f"{usage}_count", **big, gen_ai_token_type="input") == 2
    assert value(samples, f"{usage}_sum", **big, gen_ai_token_type="input") == 14 + 14
    assert value(samples, f"{usage}_sum", **big, gen_ai_token_type="output") == 37 + 30
    assert value(samples, f"{usage}_sum", **mini, gen_ai_token_type="output") == 37
    assert value(samples, f"{usage}_bucket", **big, gen_ai_token_type="input", le="4.0") == 0
    assert value(samples, f"{usage}_bucket", **big, gen_ai_token_type="input", le="16.0") == 2
    assert value(samples, f"{usage}_bucket", **big, gen_ai_token_type="output", le="64.0") == 2

    operation = "gen_ai_client_operation_duration_seconds_count"
    assert of(samples, operation) == {
        labels(**big, error_type=""): 2,
        labels(**big, error_type="401"): 1,
        labels(**mini, error_type=""): 1,
    }
    request = "gen_ai_server_request_duration_seconds_count"
    assert of(samples, request) == {
        labels(gen_ai_operation_name="chat", gen_ai_request_model="gpt-4o", error_type=""): 3,
        labels(gen_ai_operation_name="chat", gen_ai_request_model="gpt-4o", error_type="429"): 1,
        labels(gen_ai_operation_name="chat", gen_ai_request_model="unknown", error_type="404"): 1,
        labels(gen_ai_operation_name="chat", gen_ai_request_model="unknown", error_type="401"): 1,
    }
    ttft = "gen_ai_server_time_to_first_token_seconds_count"
    assert of(samples, ttft) == {labels(gen_ai_operation_name="chat", gen_ai_request_model="gpt-4o"): 1}


async def test_buckets_are_the_conventions_own() -> None:
    gateway = build(FakeOpenAI(), doc=document(extra=METRICS))
    await drive(gateway, json=STREAM_CHAT, headers=AUTH)
    samples = await scrape(gateway)

    def bounds(name: str) -> list[float]:
        found = {float(dict(k)["le"]) for (n, k) in samples if n == f"{name}_bucket"}
        return sorted(found)

    assert bounds("gen_ai_client_token_usage") == [*TOKEN_BUCKETS, float("inf")]
    assert TOKEN_BUCKETS[:3] == (1, 4, 16) and TOKEN_BUCKETS[-1] == 67108864
    assert bounds("gen_ai_client_operation_duration_seconds") == [*DURATION_BUCKETS, float("inf")]
    assert DURATION_BUCKETS[:3] == (0.01, 0.02, 0.04) and DURATION_BUCKETS[-1] == pytest.approx(81.92)
    assert bounds("gen_ai_server_request_duration_seconds") == [*DURATION_BUCKETS, float("inf")]
    assert bounds("gen_ai_server_time_to_first_token_seconds") == [*TTFT_BUCKETS, float("inf")]


async def test_model_names_a_client_makes_up_never_become_labels() -> None:
    gateway = build(FakeOpenAI(), doc=document(extra=METRICS))
    for n in range(5):
        await drive(gateway, json={**CHAT, "model": f"invented-{n}"}, headers=AUTH)
    answer = await drive(gateway, method="GET", path="/metrics")

    assert b"invented" not in answer.body
    samples = parse(answer.body.decode())
    assert of(samples, "routemw_requests_total") == {labels(account="team-a", model="unknown", status_class="4xx"): 5}


async def test_a_route_cooling_down_shows_until_it_recovers() -> None:
    up = FakeOpenAI().queue(answer_error(500))
    doc = document(extra={**METRICS, "retry": {"attempts": 1, "cooldown_after": 1, "cooldown": 60}})
    gateway = build(up, doc=doc)
    await drive(gateway, json=CHAT, headers=AUTH)  # up fails once: cooling; backup answers

    samples = await scrape(gateway)
    assert of(samples, "routemw_targets_cooling") == {
        labels(provider="up", upstream_model="gpt-4o"): 1,
        labels(provider="backup", upstream_model="gpt-4o-mini"): 0,
    }
    assert value(samples, "routemw_upstream_attempts_total", provider="up", upstream_model="gpt-4o", outcome="retry")


async def test_metrics_can_be_mounted_elsewhere_instead() -> None:
    gateway = build(FakeOpenAI(), doc=document(extra={"metrics": {"prometheus": True, "path": None}}))
    await drive(gateway, json=CHAT, headers=AUTH)

    assert (await drive(gateway, method="GET", path="/metrics")).status == 404
    assert gateway.metrics_app is not None
    samples = await scrape(gateway.metrics_app)
    assert value(samples, "routemw_requests_total", account="team-a", model="gpt-4o", status_class="2xx") == 1


async def test_without_prometheus_there_is_no_endpoint_and_no_app() -> None:
    gateway = build(FakeOpenAI())
    assert gateway.metrics_app is None
    assert (await drive(gateway, method="GET", path="/metrics")).status == 404


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [
        ({"prometheus": "yes"}, "metrics.prometheus: expected true or false, got string"),
        ({"prometheus": True, "path": "metrics"}, "metrics.path: expected a path starting with '/', or null"),
        ({"prometheus": True, "path": "/v1/metrics"}, "metrics.path: '/v1/metrics' is a path the gateway already"),
        ({"prometheus": True, "path": "/healthz"}, "metrics.path: '/healthz' is a path the gateway already answers"),
        ({"prometheus": True, "port": 9090}, "metrics.port: unknown key"),
    ],
)
def test_bad_metrics_config_is_refused_with_its_path(metrics: Mapping[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Gateway.from_config(document(extra={"metrics": metrics}), environ={})
    assert problem in str(caught.value)
