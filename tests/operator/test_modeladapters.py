"""Target modules of an adapter without ``targetModules``, read from its adapter_config.json."""

import json
from pathlib import Path

from memplace.api import AdapterSpec
from memplace.operator.modeladapters import resolved_targets
from memplace.operator.sources import SourceError, config_url

CONFIG = json.loads(
    (
        Path(__file__).parents[1]
        / "fixtures"
        / "adapters"
        / "foundation-sec-8b-r8-qv.adapter_config.json"
    ).read_text()
)


def adapter(name, source, **kw):
    return AdapterSpec(name=name, source=source, rank=8, **kw)


async def test_unset_targets_come_from_the_adapter_config_and_are_cached():
    asked = []

    def fetch(source):
        asked.append(source)
        if source == "hf://org/gone":
            raise SourceError("404")
        return CONFIG

    cache = {}
    adapters = [
        adapter("a", "hf://org/sec"),
        adapter("b", "hf://org/gone"),
        adapter("c", "hf://org/set", target_modules=["o_proj"]),  # given: not fetched
        adapter("d", "/models/d.gguf"),  # a path: nothing to fetch
    ]
    assert await resolved_targets(adapters, fetch, cache) == {"hf://org/sec": ("q_proj", "v_proj")}
    assert await resolved_targets(adapters, fetch, cache) == {"hf://org/sec": ("q_proj", "v_proj")}
    assert asked == ["hf://org/sec", "hf://org/gone"]


def test_the_adapter_config_url_is_beside_the_config():
    url = config_url("hf://org/sec@v2", "https://mirror", "adapter_config.json")
    assert url == "https://mirror/org/sec/resolve/v2/adapter_config.json"
