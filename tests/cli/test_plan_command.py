import json
import textwrap

import pytest

from memplace.cli import main

NODES = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: l4-0
    labels:
      cloud.google.com/gke-nodepool: l4
      node.kubernetes.io/instance-type: g2-standard-48
      nvidia.com/gpu.product: NVIDIA-L4
  status:
    allocatable: {cpu: "47", memory: 180Gi, nvidia.com/gpu: "4"}
"""

DEPLOYMENT = """
apiVersion: memplace.io/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}, namespace: ml}}
spec:
  model: {{name: m, parameters: {parameters}}}
  workload: {{contextTokens: 4096, concurrency: 4}}
  placement: {{tiers: [gpu]}}
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "nodes.yaml").write_text(NODES)
    docs = [
        DEPLOYMENT.format(name="small", parameters=8e9),
        DEPLOYMENT.format(name="huge", parameters=2e12),
        "apiVersion: memplace.io/v1alpha1\nkind: ModelDeployment\nmetadata: {name: broken, "
        "namespace: ml}\nspec: {model: {name: m}}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n",
    ]
    (tmp_path / "deployments.yaml").write_text("---\n".join(docs))
    return tmp_path


def test_json_lists_one_entry_per_deployment_with_the_status_fields(files, capsys):
    assert main(["plan", str(files), "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(e["namespace"], e["name"], e["phase"]) for e in out] == [
        ("ml", "broken", "Invalid"),
        ("ml", "huge", "Unschedulable"),
        ("ml", "small", "Placed"),
    ]
    assert set(out[2]) == {
        "namespace",
        "name",
        "phase",
        "placement",
        "estimate",
        "cost",
        "alternatives",
        "message",
        "adapters",
        "tier",
    }
    assert out[2]["placement"]["pool"] == "l4"
    assert out[2]["tier"] == "hot"  # status.tier: in GPU memory, replicas running
    assert "tier" not in out[1]  # nothing placed: no tier


def test_an_invalid_deployment_is_listed_with_its_message_and_does_not_stop_the_others(
    files, capsys
):
    main(["plan", str(files), "-o", "json"])
    broken = json.loads(capsys.readouterr().out)[0]
    assert "sized" in broken["message"]


def test_unknown_kinds_are_skipped_with_a_notice(files, capsys):
    main(["plan", str(files), "-o", "json"])
    assert "skipped Service/svc" in capsys.readouterr().err


def test_fail_on_sets_the_exit_status(files, capsys):
    assert main(["plan", str(files), "-o", "json", "--fail-on", "unschedulable"]) == 1
    assert main(["plan", str(files / "nodes.yaml"), "--fail-on", "invalid,unschedulable"]) == 0


def test_the_same_input_gives_byte_identical_output(files, capsys):
    main(["plan", str(files), "-o", "yaml"])
    first = capsys.readouterr().out
    main(["plan", str(files), "-o", "yaml"])
    assert capsys.readouterr().out == first


def test_a_yaml_error_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent("""\
        apiVersion: v1
        kind: Node
        metadata:
          name: [unclosed
        """)
    )
    assert main(["plan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "invalid YAML" in err


def test_a_missing_path_is_a_usage_error(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_table_shows_totals_and_reasons(files, capsys):
    main(["plan", str(files)])
    out = capsys.readouterr().out
    assert "ml/small" in out and "Total: 1 of 3 placed" in out
    assert "DoesNotFit" in out


def test_performance_profiles_in_the_input_files_calibrate_the_plan(tmp_path, capsys):
    (tmp_path / "nodes.yaml").write_text(NODES)
    chat = DEPLOYMENT.format(name="chat", parameters=8e9) + "  slo: {timePerOutputTokenMs: 40}\n"
    (tmp_path / "deployments.yaml").write_text(chat)
    assert main(["plan", str(tmp_path), "-o", "json"]) == 0
    (before,) = json.loads(capsys.readouterr().out)
    calibration = before["estimate"]["calibration"]
    assert calibration["samples"] == 0
    placement = before["placement"]
    # what `kubectl get performanceprofiles -o yaml` prints: a List
    ratios = ", ".join(["1.85"] * 5)
    (tmp_path / "profiles.yaml").write_text(
        textwrap.dedent(f"""
        apiVersion: v1
        kind: List
        items:
        - apiVersion: memplace.io/v1alpha1
          kind: PerformanceProfile
          metadata: {{name: {calibration["profile"]}}}
          spec:
            architecture: {calibration["architecture"]}
            gpuModel: {placement["gpuModel"]}
            precision: {placement["precision"]}
            kvCacheDtype: {placement["kvCacheDtype"]}
            engine: vllm
            gpusPerReplica: {placement["gpusPerReplica"]}
          status:
            decode: {{factor: 1.85, samples: 5, recentRatios: [{ratios}],
                     lastUpdated: "2026-12-01T22:00:00Z"}}
        """)
    )
    assert main(["plan", str(tmp_path), "-o", "json"]) == 0
    (after,) = json.loads(capsys.readouterr().out)
    # the placement there was (2 × L4 at bf16) is now too slow (TPOT × 1.85 > 40 ms): the plan
    # moves to the next candidate, one the profile does not cover (4 × L4), uncalibrated
    tpot = before["estimate"]["timePerOutputTokenMs"]
    assert tpot < 40 < tpot * 1.85
    assert after["phase"] == "Placed"
    assert after["placement"]["gpusPerReplica"] > placement["gpusPerReplica"]
    assert after["estimate"]["timePerOutputTokenMs"] < 40
    assert after["estimate"]["calibration"]["samples"] == 0
    assert after["estimate"]["calibration"]["profile"] != calibration["profile"]


def test_a_malformed_performance_profile_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(
        "apiVersion: memplace.io/v1alpha1\nkind: PerformanceProfile\nmetadata: {name: p}\n"
        "spec: {architecture: qwen, gpuModel: L4, precision: fp8, kvCacheDtype: fp8, "
        "engine: vllm, gpusPerReplica: 1}\n"
    )
    assert main(["plan", str(tmp_path)]) == 2
    assert "PerformanceProfile/p: spec.architecture" in capsys.readouterr().err


def test_a_scaled_deployment_is_planned_as_the_operator_plans_it(tmp_path, capsys):
    """spec.scaling: the static demand with targetUtilization's headroom (what the operator
    plans before anything is measured), so a PR preview shows the replicas it will run."""
    (tmp_path / "nodes.yaml").write_text(NODES)
    body = {"apiVersion": "memplace.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "chat", "namespace": "ml"},
            "spec": {"model": {"name": "m", "parameters": 8e9},
                     "workload": {"contextTokens": 4096, "concurrency": 4,
                                  "outputTokensPerSecond": 100},
                     "placement": {"tiers": ["gpu"]}}}
    plain = tmp_path / "plain.yaml"
    plain.write_text(json.dumps(body))
    assert main(["plan", str(tmp_path / "nodes.yaml"), str(plain), "-o", "json"]) == 0
    [unscaled] = json.loads(capsys.readouterr().out)
    body["spec"]["scaling"] = {"targetUtilization": 0.5}
    plain.write_text(json.dumps(body))
    assert main(["plan", str(tmp_path / "nodes.yaml"), str(plain), "-o", "json"]) == 0
    [scaled] = json.loads(capsys.readouterr().out)
    per_replica = scaled["estimate"]["outputTokensPerSecondPerReplica"]
    assert scaled["placement"]["replicas"] * per_replica * 0.5 >= 100
    assert scaled["placement"]["replicas"] > unscaled["placement"]["replicas"]
