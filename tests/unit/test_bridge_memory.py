"""The bridge's memory check reads cgroup v1 and v2 files as the kernel writes them and refuses a session
only when the average session would not fit. (The real check, a pod at its limit refusing instead of being
OOM-killed, is tests/kube/test_stdio_server_pod.py.)"""

from __future__ import annotations

from pathlib import Path

from mcp_runtime.bridge.memory import MIB, MemoryUse, read_memory, refusal


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def test_v2_limit_and_working_set_of_the_process_own_cgroup(tmp_path: Path) -> None:
    _write(tmp_path, {"cgroup.controllers": "cpu memory pids\n", "memory.max": "max\n"})
    _write(tmp_path / "system.slice" / "app.service", {
        "memory.max": f"{256 * MIB}\n", "memory.current": f"{150 * MIB}\n",
        "memory.stat": f"anon 100\nfile {40 * MIB}\ninactive_file {30 * MIB}\nactive_file 5\n"})
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/app.service\n")
    assert read_memory(tmp_path, proc) == MemoryUse(limit=256 * MIB, working_set=120 * MIB)
    proc.write_text("0::/\n")  # a container: its own cgroup is the root, which has no limit here
    assert read_memory(tmp_path, proc) is None


def test_v1_container_reads_the_mounted_memory_cgroup_and_ignores_the_host_path(tmp_path: Path) -> None:
    _write(tmp_path / "memory", {
        "memory.limit_in_bytes": f"{512 * MIB}\n", "memory.usage_in_bytes": f"{489 * MIB}\n",
        "memory.stat": f"cache {44 * MIB}\nrss {432 * MIB}\ntotal_cache {44 * MIB}\n"
                       f"total_inactive_file {27 * MIB}\n"})
    proc = tmp_path / "cgroup"
    proc.write_text("12:pids:/kubepods/burstable/pod1/abc\n4:memory:/kubepods/burstable/pod1/abc\n")
    assert read_memory(tmp_path, proc) == MemoryUse(limit=512 * MIB, working_set=462 * MIB)
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # no limit
    assert read_memory(tmp_path, proc) is None
    assert read_memory(tmp_path / "absent", proc) is None


def test_a_session_is_refused_only_when_the_average_one_would_pass_the_headroom() -> None:
    limit = 256 * MIB
    assert refusal(None, 0, 3) is None  # no limit known
    assert refusal(MemoryUse(limit, 200 * MIB), 60 * MIB, 0) is None  # no session yet: nothing to go by
    assert refusal(MemoryUse(limit, 120 * MIB), 60 * MIB, 1) is None  # 120 + 60 <= 230
    reason = refusal(MemoryUse(limit, 180 * MIB), 60 * MIB, 2)  # 180 + 60 > 230
    assert reason is not None and "180 MiB of its 256 MiB limit" in reason and "about 60 MiB" in reason
    assert refusal(MemoryUse(limit, 180 * MIB), 60 * MIB, 2, headroom=0) is None  # the check is off
