"""Host readers: /proc/meminfo, statvfs, and the cgroup line that names a GPU process's pod."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memplace.agent.host import (
    PodRef,
    host_pid_namespace,
    parse_cgroup,
    parse_meminfo,
    pod_for_pid,
    read_host,
)

UID = "0b4f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
UID_ = UID.replace("-", "_")
CID = "3f1c9d2e" * 8

MEMINFO = """\
MemTotal:       263782716 kB
MemFree:         1024000 kB
MemAvailable:   200000000 kB
Buffers:          123456 kB
HugePages_Total:       0
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
            f"cri-containerd-{CID}.scope",
            PodRef(UID, CID),
            id="v2-systemd-containerd",
        ),
        pytest.param(
            f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
            f"crio-{CID}.scope",
            PodRef(UID, CID),
            id="v2-systemd-crio",
        ),
        pytest.param(
            f"0::/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope",
            PodRef(UID, CID),
            id="v2-systemd-guaranteed-docker",
        ),
        pytest.param(f"0::/kubepods/burstable/pod{UID}/{CID}", PodRef(UID, CID), id="v2-cgroupfs"),
        pytest.param(
            f"11:memory:/kubepods/besteffort/pod{UID}/{CID}", PodRef(UID, CID), id="v1-cgroupfs"
        ),
        pytest.param(
            f"4:cpu,cpuacct:/kubepods/pod{UID}/{CID}", PodRef(UID, CID), id="v1-guaranteed"
        ),
        pytest.param(
            f"1:name=systemd:/kubepods.slice/kubepods-burstable.slice/"
            f"kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
            PodRef(UID, CID),
            id="v1-systemd-containerd",
        ),
        pytest.param(
            f"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
            f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
            PodRef(UID, CID),
            id="kind-nested-kubelet",
        ),
        pytest.param(
            f"0::/kubepods/burstable/pod{UID}", PodRef(UID, None), id="pod-level-no-container"
        ),
        pytest.param(
            "0::/kubepods/burstable/pod5d1c3e0f9a8b7c6d5e4f3a2b1c0d9e8f/" + CID,
            PodRef("5d1c3e0f9a8b7c6d5e4f3a2b1c0d9e8f", CID),
            id="static-pod-config-hash",
        ),
        pytest.param("0::/init.scope", None, id="host-init"),
        pytest.param("0::/system.slice/containerd.service", None, id="host-service"),
        pytest.param("0::/user.slice/user-1000.slice/session-3.scope", None, id="user-session"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_cgroup_finds_the_pod_and_container(line: str, expected: PodRef | None) -> None:
    assert parse_cgroup(line) == expected


def test_parse_cgroup_prefers_a_line_with_the_container_in_v1() -> None:
    text = "\n".join(
        [
            "12:pids:/kubepods/burstable/pod" + UID,
            f"11:memory:/kubepods/burstable/pod{UID}/{CID}",
            "0::/",
        ]
    )
    assert parse_cgroup(text) == PodRef(UID, CID)


def test_parse_meminfo_reads_kib_as_bytes() -> None:
    assert parse_meminfo(MEMINFO) == (263782716 * 1024, 200000000 * 1024)


def test_parse_meminfo_without_memavailable_gives_none() -> None:
    assert parse_meminfo("MemTotal: 1000 kB\n") == (1024000, None)


def _proc(tmp_path: Path, pid1_cgroup: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "cgroup").write_text(pid1_cgroup)
    (proc / "4242").mkdir()
    (proc / "4242" / "cgroup").write_text(f"0::/kubepods/burstable/pod{UID}/{CID}\n")
    (proc / "meminfo").write_text(MEMINFO)
    return proc


def test_read_host_reads_meminfo_and_the_offload_filesystem(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/init.scope\n")
    host = read_host(str(tmp_path), proc_root=proc)

    stat = os.statvfs(tmp_path)
    assert host.mem_total_bytes == 263782716 * 1024
    assert host.mem_available_bytes == 200000000 * 1024
    assert host.offload_path == str(tmp_path)
    assert host.offload_total_bytes == stat.f_blocks * stat.f_frsize
    assert 0 < host.offload_free_bytes <= host.offload_total_bytes


def test_read_host_survives_a_missing_offload_path_and_proc(tmp_path: Path) -> None:
    host = read_host(str(tmp_path / "absent"), proc_root=tmp_path / "no-proc")
    assert host.mem_total_bytes is None
    assert host.offload_path == str(tmp_path / "absent")
    assert host.offload_total_bytes is None


def test_pod_for_pid_reads_proc_and_forgets_gone_processes(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/init.scope\n")
    assert pod_for_pid(4242, proc) == PodRef(UID, CID)
    assert pod_for_pid(9999, proc) is None


def test_host_pid_namespace_is_told_by_pid_1(tmp_path: Path) -> None:
    assert host_pid_namespace(_proc(tmp_path / "host", "0::/init.scope\n"))
    in_pod = f"0::/kubepods/burstable/pod{UID}/{CID}\n"
    assert not host_pid_namespace(_proc(tmp_path / "pod", in_pod))
