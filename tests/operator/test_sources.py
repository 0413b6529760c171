"""Fetching config.json from the Hub: URLs, tokens, and errors that say what failed."""

from __future__ import annotations

import httpx
import pytest

from memplace.operator.sources import SourceError, config_url, fetch_config


def test_hf_source_resolves_to_the_config_on_the_endpoint():
    assert config_url("hf://Qwen/Qwen3-8B", "https://mirror.example") == (
        "https://mirror.example/Qwen/Qwen3-8B/resolve/main/config.json"
    )
    assert config_url("hf://org/m@v1.0", "https://h").endswith("/org/m/resolve/v1.0/config.json")


def test_hf_endpoint_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.internal/")
    assert config_url("hf://a/b").startswith("https://hf-mirror.internal/a/b/")


@pytest.mark.parametrize("bad", ["hf://onlyname", "hf://a/b/c", "s3://bucket/x", "Qwen/Qwen3"])
def test_malformed_sources_are_refused(bad):
    with pytest.raises(SourceError):
        config_url(bad)


def test_the_token_is_sent_and_the_json_returned(monkeypatch):
    seen = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(200, json={"model_type": "llama"})

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    config = fetch_config("hf://a/b", endpoint="https://h", transport=httpx.MockTransport(answer))
    assert config == {"model_type": "llama"} and seen["auth"] == "Bearer hf_secret"


@pytest.mark.parametrize(
    ("status", "message"), [(401, "HF_TOKEN"), (403, "gated"), (404, "HTTP 404")]
)
def test_http_errors_say_what_to_do(status, message):
    transport = httpx.MockTransport(lambda r: httpx.Response(status))
    with pytest.raises(SourceError, match=message):
        fetch_config("hf://a/b", endpoint="https://h", token="", transport=transport)


def test_non_json_and_non_objects_are_refused():
    text = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>"))
    with pytest.raises(SourceError, match="did not return JSON"):
        fetch_config("hf://a/b", endpoint="https://h", token="", transport=text)
    array = httpx.MockTransport(lambda r: httpx.Response(200, json=[1]))
    with pytest.raises(SourceError, match="not an object"):
        fetch_config("hf://a/b", endpoint="https://h", token="", transport=array)


def test_network_failure_names_source_and_url():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(SourceError, match=r"hf://a/b from https://h/a/b/resolve/main"):
        fetch_config(
            "hf://a/b", endpoint="https://h", token="", transport=httpx.MockTransport(refuse)
        )
