"""peering: whether this replica may write, by Kopf's own rule on the peering's status."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

from memplace.operator import peering

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def peer(priority: int, seen_ago: float = 0.0, lifetime: int = 60) -> dict[str, Any]:
    seen = NOW - datetime.timedelta(seconds=seen_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def blocking(status: dict[str, Any], identity: str | None = "me", priority: int = 10) -> list[str]:
    return peering.blocking_peers(status, identity=identity, priority=priority, now=NOW)


def test_a_live_peer_with_a_higher_priority_pauses_this_replica_until_it_expires():
    assert blocking({"me": peer(10), "other": peer(11, seen_ago=30)}) == ["other"]
    assert blocking({"me": peer(10), "other": peer(11, seen_ago=60)}) == []
    assert blocking({"me": peer(10), "other": peer(9)}) == []


def test_a_shared_top_priority_pauses_every_replica_as_kopf_does():
    assert blocking({"me": peer(10), "twin": peer(10)}) == ["twin"]
    unsharded = peering.blocking_peers({"me": peer(10), "twin": peer(10)}, identity="me",
                                       priority=10, now=NOW, same_priority_pauses=False)
    assert unsharded == []


def test_without_pod_id_one_entry_of_this_replica_s_priority_is_taken_to_be_itself():
    assert blocking({"user@host/x": peer(10)}, identity=None) == []
    assert blocking({"user@host/x": peer(10), "y": peer(10)}, identity=None) == ["y"]
    assert blocking({"user@host/x": peer(10), "y": peer(12)}, identity=None) == ["y"]


class FakeKube:
    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.asked: list[str] = []

    async def get(self, url: str) -> dict[str, Any] | None:
        self.asked.append(url)
        return self.objects.get(url)


def settings(**peering_settings: Any) -> Any:
    defaults = dict(standalone=False, clusterwide=True, mandatory=True, name="memplace",
                    priority=10)
    return SimpleNamespace(peering=SimpleNamespace(**(defaults | peering_settings)),
                           watching=SimpleNamespace(shard_selectors={}))


async def test_standalone_is_always_active_and_asks_nothing():
    api = FakeKube({})
    assert await peering.active(settings(standalone=True), api, [], NOW) == (True, "")
    assert api.asked == []


async def test_a_missing_peering_pauses_only_when_peering_is_mandatory(monkeypatch):
    monkeypatch.setenv("POD_ID", "me")
    ok, why = await peering.active(settings(), FakeKube({}), [], NOW)
    assert not ok and "does not exist" in why
    assert (await peering.active(settings(mandatory=False), FakeKube({}), [], NOW))[0]


async def test_the_cluster_peering_or_each_namespace_s_peering_is_read(monkeypatch):
    monkeypatch.setenv("POD_ID", "me")
    cluster_url = "/apis/kopf.dev/v1/clusterkopfpeerings/memplace"
    api = FakeKube({cluster_url: {"status": {"me": peer(10), "new-pod": peer(20)}}})
    ok, why = await peering.active(settings(), api, ["ml"], NOW)
    assert not ok and "new-pod" in why and api.asked == [cluster_url]

    ml = "/apis/kopf.dev/v1/namespaces/ml/kopfpeerings/memplace"
    other = "/apis/kopf.dev/v1/namespaces/other/kopfpeerings/memplace"
    api = FakeKube({ml: {"status": {"me": peer(10)}}, other: {"status": {"me": peer(10)}}})
    assert await peering.active(settings(clusterwide=False), api, ["ml", "other", "ml"], NOW) \
        == (True, "")
    assert api.asked == [ml, other]
