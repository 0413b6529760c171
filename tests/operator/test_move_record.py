"""A move start whose status write meets a 409 is written again on the fresh status.

The successor Deployment exists by then; dropping the record (as a stale re-plan is dropped)
let a spec edit before the next resync pass start a second move. CI saw exactly that when the
measurement loop's first ``SLOMet`` write landed between the index read and the move write.
"""

from __future__ import annotations

import logging
import types
from typing import Any

from memplace.operator import kube, resync

URL = "/apis/memplace.io/v1alpha1/namespaces/ml/modeldeployments/summarizer"


def _conflict() -> kube.Conflict:
    return kube.Conflict("the object has been modified", status=409, headers={})


class FakeApi:
    """Answers the first status patch with 409 (``conflicts`` of them); records the rest."""

    def __init__(self, fresh: dict[str, Any] | None, conflicts: int = 1) -> None:
        self.fresh = fresh
        self.conflicts = conflicts
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.gets: list[str] = []

    async def merge_patch(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((url, body))
        if self.conflicts:
            self.conflicts -= 1
            raise _conflict()
        return {}

    async def get(self, url: str) -> dict[str, Any] | None:
        self.gets.append(url)
        return self.fresh


def State() -> Any:  # noqa: N802 — what _write_status reads of the operator's State
    return types.SimpleNamespace(fingerprints={})


def _cond(kind: str, reason: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": reason}


READ = {"metadata": {"resourceVersion": "10"},
        "status": {"conditions": [_cond("Valid", "Valid"), _cond("Placed", "Placed")]}}
MOVE = {"fromDeployment": "summarizer", "toDeployment": "summarizer-1234abcd"}
CHANGES = {"move": MOVE, "conditions": [_cond("Valid", "Valid"), _cond("Placed", "Moving")]}


async def test_a_move_start_that_meets_a_409_is_written_on_the_fresh_status() -> None:
    fresh = {"metadata": {"resourceVersion": "14"}, "status": {"conditions": [
        _cond("Valid", "Valid"), _cond("Placed", "Placed"), _cond("SLOMet", "NoPrometheus")]}}
    api = FakeApi(fresh)
    state = State()
    key = ("ml", "summarizer")
    state.fingerprints[key] = object()  # type: ignore[assignment]

    written = await resync._write_status(
        state, api, key, READ, CHANGES, logging.getLogger("test"))  # type: ignore[arg-type]

    assert written
    assert api.gets == [URL]  # the object, not /status: the chart grants get on it
    url, second = api.patches[1]
    assert url == URL + "/status"
    assert second["metadata"] == {"resourceVersion": "14"}
    assert second["status"]["move"] == MOVE
    # the measurement loop's condition survives; the one this plan changed is this plan's
    assert [(c["type"], c["reason"]) for c in second["status"]["conditions"]] == [
        ("Valid", "Valid"), ("Placed", "Moving"), ("SLOMet", "NoPrometheus")]
    assert key in state.fingerprints  # written: nothing to redo


async def test_a_move_recorded_meanwhile_is_not_overwritten() -> None:
    fresh = {"metadata": {"resourceVersion": "14"},
             "status": {"move": {"toDeployment": "summarizer-other"}}}
    api = FakeApi(fresh)
    written = await resync._write_status(
        State(), api, ("ml", "summarizer"), READ, CHANGES,
        logging.getLogger("test"))  # type: ignore[arg-type]
    assert not written
    assert len(api.patches) == 1


async def test_a_stale_re_plan_without_a_move_is_dropped_and_redone_next_pass() -> None:
    api = FakeApi({"metadata": {"resourceVersion": "14"}, "status": {}})
    state = State()
    key = ("ml", "summarizer")
    state.fingerprints[key] = object()  # type: ignore[assignment]
    written = await resync._write_status(
        state, api, key, READ, {"conditions": CHANGES["conditions"]},
        logging.getLogger("test"))  # type: ignore[arg-type]
    assert not written
    assert api.gets == [] and len(api.patches) == 1
    assert key not in state.fingerprints  # forgotten: the next pass plans and writes again


async def test_a_second_409_leaves_the_move_start_to_the_next_pass() -> None:
    api = FakeApi({"metadata": {"resourceVersion": "14"}, "status": {}}, conflicts=2)
    written = await resync._write_status(
        State(), api, ("ml", "summarizer"), READ, CHANGES,
        logging.getLogger("test"))  # type: ignore[arg-type]
    assert not written
    assert len(api.patches) == 2
