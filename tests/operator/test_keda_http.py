"""The HTTPScaledObject memplace renders where the KEDA HTTP add-on is installed, validated against
the add-on's own CRD schema (``tests/fixtures/keda``, with its source), and ``keda.keep``: one
owner of the replica count (memplace's ScaledObject), both objects kept on the serving
Deployment."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_keda import BODY, FIELDS
from test_keda import schema as scaled_object_schema

from memplace.api import ModelDeploymentSpec
from memplace.operator import keda, keda_http, render
from memplace.operator.metrics import Metrics
from memplace.operator.prometheus import PrometheusConfig
from memplace.operator.settings import Settings
from memplace.operator.state import State
from memplace.planning import scaling

CRD = Path(__file__).parents[1] / "fixtures" / "keda" / "http.keda.sh_httpscaledobjects.yaml"
SPEC = ModelDeploymentSpec.model_validate(
    {**BODY["spec"], "workload": {"contextTokens": 4096, "concurrency": 4}}
)
POLICY = scaling.Policy.from_spec(SPEC)
SCALER = "keda-add-ons-http-external-scaler.keda:9090"


def schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


def validate(obj: dict) -> None:
    """The openAPIV3Schema, and the CRD's CEL rule on scaleTargetRef (``has(self.portName) !=
    has(self.port)``), which jsonschema does not evaluate: checked here as the rule says."""
    jsonschema.validate(obj, schema())
    crd = yaml.safe_load(CRD.read_text())
    [version] = crd["spec"]["versions"]
    ref_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "scaleTargetRef"
    ]
    [rule] = ref_schema["x-kubernetes-validations"]
    assert rule["rule"] == "has(self.portName) != has(self.port)"  # the rule checked below
    ref = obj["spec"]["scaleTargetRef"]
    if ("portName" in ref) == ("port" in ref):
        raise jsonschema.ValidationError(rule["message"])


def rendered(deployment: str = "chat-ab12cd34", concurrency: int = 4) -> dict:
    return keda_http.http_scaled_object(BODY, deployment, FIELDS, POLICY, concurrency)


def test_the_http_scaled_object_is_valid_against_the_add_ons_published_schema():
    validate(rendered())


def test_a_schema_violation_is_caught():
    missing = rendered()
    del missing["spec"]["scaleTargetRef"]["service"]  # required: the interceptor routes to it
    with pytest.raises(jsonschema.ValidationError):
        validate(missing)
    both = rendered()
    both["spec"]["scaleTargetRef"]["port"] = 8000  # port and portName: the CEL rule refuses
    with pytest.raises(jsonschema.ValidationError, match="either the 'portName' or the 'port'"):
        validate(both)


def test_it_routes_the_services_dns_names_to_the_serving_deployment_inside_the_plan():
    httpso = rendered()
    spec = httpso["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "chat-ab12cd34",
        "service": "chat",
        "portName": "http",
    }
    assert spec["hosts"] == ["chat.ml", "chat.ml.svc", "chat.ml.svc.cluster.local"]
    assert "pathPrefixes" not in spec  # every path of the model's API
    assert spec["replicas"] == {"min": 0, "max": 4}
    assert spec["scaledownPeriod"] == 600  # idleAfterSeconds
    assert spec["scalingMetric"] == {"concurrency": {"targetValue": 2}}  # floor(4 × 0.7)
    meta = httpso["metadata"]
    assert meta["annotations"] == {"httpscaledobject.keda.sh/skip-scaledobject-creation": "true"}
    assert meta["ownerReferences"][0]["uid"] == "u-1"
    assert (meta["name"], meta["namespace"]) == ("chat", "ml")


def test_the_port_name_is_the_one_the_model_service_has():
    owner = render.Owner("chat", "ml", "u-1")
    service = render.render_service(owner, SPEC, "chat-ab12cd34")
    assert [p["name"] for p in service["spec"]["ports"]] == [keda_http.PORT_NAME]


def test_without_max_replicas_the_plan_bounds_the_replicas():
    spec = SPEC.model_copy(
        update={"scaling": SPEC.scaling.model_copy(update={"max_replicas": None})}
    )
    policy = scaling.Policy.from_spec(spec)
    httpso = keda_http.http_scaled_object(BODY, "chat", FIELDS, policy, 4)
    assert httpso["spec"]["replicas"] == {"min": 0, "max": 2}  # FIELDS: the plan's 2 replicas


@pytest.mark.parametrize(
    "concurrency, utilization, target",
    [
        (4, 0.7, 2),
        (10, 0.7, 7),
        (1, 0.7, 1),
        (8, 0.5, 4),
        (3, 1.0, 3),
    ],
)
def test_the_concurrency_target_keeps_the_headroom(concurrency, utilization, target):
    policy = scaling.Policy(True, 0.0, 0, None, utilization, 0, 300, None, True)
    assert keda_http.target_value(concurrency, policy) == target


def test_the_scaled_object_gets_the_add_ons_trigger_and_stays_valid():
    so = keda.scaled_object(
        BODY,
        "chat-ab12cd34",
        FIELDS,
        POLICY,
        prometheus_url="http://prometheus.monitoring:9090",
        window="5m",
        http_scaler=SCALER,
    )
    jsonschema.validate(so, scaled_object_schema())
    assert so["spec"]["triggers"][-1] == {
        "type": "external-push",
        "name": "http",
        "metadata": {"scalerAddress": SCALER, "httpScaledObject": "chat"},
    }
    without = keda.scaled_object(
        BODY,
        "chat-ab12cd34",
        FIELDS,
        POLICY,
        prometheus_url="http://prometheus.monitoring:9090",
        window="5m",
    )
    assert [t["type"] for t in without["spec"]["triggers"]] == ["prometheus"]


def test_the_operators_default_scaler_is_where_the_add_on_installs_it():
    assert Settings().keda_http_scaler == keda_http.SCALER == SCALER


# --- keda.keep, against a recording stand-in for the API -------------------------------------


class FakeApi:
    """Serves discovery for the groups in ``served`` and stores what is created or patched."""

    def __init__(self, served: dict[str, list[str]], refuse: str | None = None) -> None:
        self.served = served
        self.refuse = refuse
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    async def get(self, url: str) -> dict[str, Any] | None:
        self.calls.append(("get", url))
        for group, names in self.served.items():
            if url == f"/apis/{group}":
                return {"resources": [{"name": n} for n in names]}
        if url.count("/") == 3:  # discovery of a group that is not served
            raise RuntimeError("404 Not Found")
        return self.objects.get(url)

    async def create(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", url))
        if self.refuse and self.refuse in url:
            raise RuntimeError(f"forbidden: {url}")
        self.objects[f"{url}/{body['metadata']['name']}"] = body
        return body

    async def merge_patch(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", url))
        stored = self.objects[url]
        for field, value in body.items():
            if isinstance(value, dict) and isinstance(stored.get(field), dict):
                stored[field] = {**stored[field], **value}
            else:
                stored[field] = value
        return stored


def state() -> State:
    settings = Settings(prometheus=PrometheusConfig(url="http://prometheus.monitoring:9090"))
    made = State(settings=settings, metrics=Metrics())
    made.keda = True
    return made


BODY_WITH_WORKLOAD = {
    **BODY,
    "spec": {**BODY["spec"], "workload": {"concurrency": 4}},
    "status": FIELDS,
}
HTTPSO = "/apis/http.keda.sh/v1alpha1/namespaces/ml/httpscaledobjects/chat"
SO = "/apis/keda.sh/v1alpha1/namespaces/ml/scaledobjects/chat"


def test_with_the_add_on_both_objects_follow_the_serving_deployment_httpso_first():
    api = FakeApi({"http.keda.sh/v1alpha1": ["httpscaledobjects"]})
    run = state()
    asyncio.run(keda.keep(run, api, BODY_WITH_WORKLOAD, "chat"))
    creates = [url for verb, url in api.calls if verb == "create"]
    assert creates == [HTTPSO.rsplit("/", 1)[0], SO.rsplit("/", 1)[0]]  # named before it is
    validate(api.objects[HTTPSO])
    triggers = api.objects[SO]["spec"]["triggers"]
    assert triggers[-1]["metadata"] == {"scalerAddress": SCALER, "httpScaledObject": "chat"}
    # A move: the successor serves; both are retargeted, nothing is re-created.
    api.calls.clear()
    asyncio.run(keda.keep(run, api, BODY_WITH_WORKLOAD, "chat-ff00ff00"))
    assert [verb for verb, _ in api.calls if verb != "get"] == ["patch", "patch"]
    assert api.objects[HTTPSO]["spec"]["scaleTargetRef"]["name"] == "chat-ff00ff00"
    assert api.objects[HTTPSO]["spec"]["scaleTargetRef"]["service"] == "chat"
    assert api.objects[SO]["spec"]["scaleTargetRef"]["name"] == "chat-ff00ff00"
    # Unchanged: nothing written; discovery was asked once.
    api.calls.clear()
    asyncio.run(keda.keep(run, api, BODY_WITH_WORKLOAD, "chat-ff00ff00"))
    assert [verb for verb, _ in api.calls if verb != "get"] == []
    assert ("get", "/apis/http.keda.sh/v1alpha1") not in api.calls


def test_a_removed_skip_annotation_is_put_back():
    api = FakeApi({"http.keda.sh/v1alpha1": ["httpscaledobjects"]})
    run = state()
    asyncio.run(keda.keep(run, api, BODY_WITH_WORKLOAD, "chat"))
    api.objects[HTTPSO]["metadata"]["annotations"] = {}  # the add-on would make a 2nd scaler
    asyncio.run(keda.keep(run, api, BODY_WITH_WORKLOAD, "chat"))
    assert api.objects[HTTPSO]["metadata"]["annotations"] == {keda_http.SKIP_SCALED_OBJECT: "true"}


def test_without_the_add_on_nothing_http_keda_sh_is_asked_beyond_discovery():
    api = FakeApi({})
    run = state()
    asyncio.run(keda.keep(run, api, BODY_WITH_WORKLOAD, "chat"))
    asyncio.run(keda.keep(run, api, BODY_WITH_WORKLOAD, "chat-ff00ff00"))
    http = [call for call in api.calls if "http.keda.sh" in call[1]]
    assert http == [("get", "/apis/http.keda.sh/v1alpha1")]
    assert [t["type"] for t in api.objects[SO]["spec"]["triggers"]] == ["prometheus"]
    assert run.keda_http is False


def test_a_refused_http_scaled_object_still_keeps_the_scaled_object_and_says_why():
    api = FakeApi({"http.keda.sh/v1alpha1": ["httpscaledobjects"]}, refuse="httpscaledobjects")
    with pytest.raises(RuntimeError, match="forbidden"):
        asyncio.run(keda.keep(state(), api, BODY_WITH_WORKLOAD, "chat"))
    assert SO in api.objects  # a move must still retarget KEDA's scaler
