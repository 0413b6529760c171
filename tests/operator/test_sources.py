"""Fetching config.json and checkpoint headers from the Hub: URLs, tokens, ranges, errors.

The checkpoint tests run against ``hub_server.hub``: a real HTTP server on a loopback port
serving tests/fixtures/hub the way the hub does (``/org/name/resolve/rev/file``, Range).
"""

from __future__ import annotations

import struct

import httpx
import pytest

from hub_server import hub_fixture  # noqa: F401 (the `hub` fixture)
from memplace.operator import sources
from memplace.operator.sources import (
    SourceError,
    checkpoint_base,
    config_url,
    fetch_checkpoint,
    fetch_config,
)


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


# --- checkpoint headers over HTTP ------------------------------------------------------------


def test_a_sharded_checkpoint_is_read_from_its_index_and_two_ranges_per_shard(hub):
    checkpoint = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert checkpoint is not None and checkpoint.stored_bytes == 13_761_264_768
    shard_requests = [r for r in hub.requests if r[0].endswith(".safetensors")]
    assert len(shard_requests) == 3 * 2
    assert all(rng and rng.startswith("bytes=") for _, rng in shard_requests)
    assert {rng for _, rng in shard_requests} >= {"bytes=0-7"}
    assert hub.bytes_sent < 1_000_000  # headers and the index, never tensor data
    assert checkpoint.revision and len(checkpoint.revision) == 40  # X-Repo-Commit


def test_a_single_file_checkpoint_is_read_when_there_is_no_index(hub):
    config = fetch_config("hf://Qwen/Qwen3-0.6B", endpoint=hub.url, token="")
    checkpoint = fetch_checkpoint("hf://Qwen/Qwen3-0.6B", config, endpoint=hub.url, token="")
    assert checkpoint is not None and checkpoint.tensors == 311 and checkpoint.shards == 1
    assert checkpoint.loaded_bytes == 1_192_099_840  # tied lm_head left out


def test_a_repository_without_safetensors_has_no_checkpoint(hub):
    assert fetch_checkpoint("hf://constructed/config-only", endpoint=hub.url, token="") is None


def test_checkpoints_are_cached_per_revision(hub):
    first = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    asked = len(hub.requests)
    again = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert again is first and len(hub.requests) == asked
    other = fetch_checkpoint("hf://openai/gpt-oss-20b@v2", endpoint=hub.url, token="")
    assert len(hub.requests) > asked and other is not None and other.revision != first.revision
    at_v2 = hub.commit("openai/gpt-oss-20b", "v2")  # read at the commit v2 resolves to
    assert other.revision == at_v2 and any(f"/resolve/{at_v2}/" in p for p, _ in hub.requests)


def test_a_branch_is_read_at_its_commit_and_a_push_is_seen_after_the_ttl(hub, monkeypatch):
    """`hf://org/name` means main *now*: the checkpoint is cached by the commit main resolved
    to, every file is read at that commit, and once COMMIT_TTL_S has passed a push to main is
    read afresh, while an unchanged main costs one HEAD and no reads."""
    old, new = "1" * 40, "2" * 40
    hub.heads[("openai/gpt-oss-20b", "main")] = old
    first = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert first.revision == old and len(hub.heads_asked) == 1
    assert all(f"/resolve/{old}/" in path for path, _ in hub.requests)
    hub.heads[("openai/gpt-oss-20b", "main")] = new  # a push; still within the TTL
    assert fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="") is first
    assert len(hub.heads_asked) == 1
    monkeypatch.setattr(sources, "COMMIT_TTL_S", 0.0)
    asked = len(hub.requests)
    pushed = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert pushed is not first and pushed.revision == new
    assert all(f"/resolve/{new}/" in path for path, _ in hub.requests[asked:])
    asked = len(hub.requests)
    again = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert again is pushed and len(hub.requests) == asked  # one HEAD, no reads
    pinned = fetch_checkpoint(f"hf://openai/gpt-oss-20b@{old}", endpoint=hub.url, token="")
    assert pinned is first  # a commit id needs no HEAD and is the same checkpoint


def test_the_cache_is_bounded(hub, monkeypatch):
    monkeypatch.setattr(sources, "CHECKPOINTS_KEPT", 2)
    for revision in ("a", "b", "c"):
        fetch_checkpoint(f"hf://Qwen/Qwen3-0.6B@{revision}", endpoint=hub.url, token="")
    asked = len(hub.requests)
    fetch_checkpoint("hf://Qwen/Qwen3-0.6B@c", endpoint=hub.url, token="")
    assert len(hub.requests) == asked  # kept
    fetch_checkpoint("hf://Qwen/Qwen3-0.6B@a", endpoint=hub.url, token="")
    assert len(hub.requests) > asked  # dropped, fetched again


def test_a_server_that_ignores_range_is_cut_off_after_the_header(hub):
    hub.honor_range = False
    checkpoint = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert checkpoint is not None and checkpoint.stored_bytes == 13_761_264_768
    # each shard is gigabytes long; the client stops reading after the header
    assert hub.bytes_sent < 64 << 20


def test_the_token_is_sent_for_gated_checkpoints(hub):
    hub.tokens["openai/gpt-oss-20b"] = "hf_good"
    with pytest.raises(SourceError, match="gated or private; set HF_TOKEN"):
        fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    with pytest.raises(SourceError, match="answered 403"):
        fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="hf_bad")
    found = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="hf_good")
    assert found is not None


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True)])
def test_server_errors_are_retryable(hub, status, retryable):
    hub.status["openai/gpt-oss-20b"] = status
    with pytest.raises(SourceError, match=f"HTTP {status}") as error:
        fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert error.value.retryable is retryable


def test_a_shard_the_index_names_but_the_hub_lacks_is_an_error(hub):
    hub.files["openai/gpt-oss-20b/model.safetensors.index.json"] = (
        b'{"metadata": {}, "weight_map": {"a": "model-00009-of-00009.safetensors"}}'
    )
    with pytest.raises(SourceError, match="model-00009-of-00009.safetensors answered HTTP 404"):
        fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")


def test_an_oversized_header_is_refused_without_reading_it(hub):
    hub.files["constructed/config-only/model.safetensors"] = struct.pack("<Q", 1 << 40) + b"{}"
    with pytest.raises(SourceError, match="larger than the"):
        fetch_checkpoint("hf://constructed/config-only", endpoint=hub.url, token="")
    assert hub.requests[-1][1] == "bytes=0-7"


def test_a_file_shorter_than_its_header_length_is_an_error(hub):
    hub.files["constructed/config-only/model.safetensors"] = struct.pack("<Q", 100) + b"{}"
    with pytest.raises(SourceError, match="ended after 10 bytes, before 108"):
        fetch_checkpoint("hf://constructed/config-only", endpoint=hub.url, token="")


def test_an_index_with_too_many_shards_is_refused(hub, monkeypatch):
    monkeypatch.setattr(sources, "MAX_SHARDS", 2)
    with pytest.raises(SourceError, match="lists 3 shards, more than the 2 read"):
        fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")


def test_an_unreachable_hub_is_retryable():
    with pytest.raises(SourceError, match="could not fetch") as error:
        fetch_checkpoint("hf://a/b", endpoint="http://127.0.0.1:9", token="")
    assert error.value.retryable


def test_the_checkpoint_lives_beside_the_config():
    assert checkpoint_base("hf://org/m@rev", "https://h") == "https://h/org/m/resolve/rev"
    assert checkpoint_base("https://mirror/x/config.json") == "https://mirror/x"
    assert checkpoint_base("https://mirror/x/qwen.json") is None


def test_a_failed_checkpoint_is_not_asked_for_again_until_the_retry_time(hub, monkeypatch):
    hub.status["openai/gpt-oss-20b"] = 503
    with pytest.raises(SourceError):
        fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    asked = len(hub.requests)
    del hub.status["openai/gpt-oss-20b"]
    with pytest.raises(SourceError, match="HTTP 503"):
        fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert len(hub.requests) == asked
    monkeypatch.setattr(sources, "FAILED_RETRY_S", 0.0)
    hub.status["openai/gpt-oss-20b"] = 503
    with pytest.raises(SourceError):
        fetch_checkpoint("hf://openai/gpt-oss-20b@b", endpoint=hub.url, token="")
    del hub.status["openai/gpt-oss-20b"]
    assert fetch_checkpoint("hf://openai/gpt-oss-20b@b", endpoint=hub.url, token="") is not None


def test_ranges_follow_the_hubs_redirect_to_its_cdn(hub):
    hub.redirect_shards = True
    checkpoint = fetch_checkpoint("hf://openai/gpt-oss-20b", endpoint=hub.url, token="")
    assert checkpoint is not None and checkpoint.stored_bytes == 13_761_264_768
    at_cdn = [rng for path, rng in hub.requests if path.startswith("/cdn/")]
    assert len(at_cdn) == 6 and "bytes=0-7" in at_cdn
    assert hub.bytes_sent < 1_000_000
