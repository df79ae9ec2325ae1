"""The bridge's memory check reads cgroup v1 and v2 files as the kernel writes them and refuses a session
only when the average session would not fit. (The real check, a pod at its limit refusing instead of being
OOM-killed, is tests/kube/test_stdio_server_pod.py.)"""

from __future__ import annotations

from pathlib import Path

from mcp_runtime.bridge.memory import MIB, MemoryUse, admission, read_memory


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
    assert admission(None, 0, 3, 0) == ("admit", None)  # no limit known
    assert admission(MemoryUse(limit, 60 * MIB), 60 * MIB, 0, 0) == ("admit", None)  # the first session
    assert admission(MemoryUse(limit, 120 * MIB), 60 * MIB, 1, 0) == ("admit", None)  # 120 + 60 <= 230
    verdict, why = admission(MemoryUse(limit, 180 * MIB), 60 * MIB, 2, 0)  # 180 + 60 > 230
    assert verdict == "refuse" and why is not None
    assert "180 MiB of its 256 MiB limit" in why and "about 60 MiB" in why
    assert admission(MemoryUse(limit, 180 * MIB), 60 * MIB, 2, 0, headroom=0) == ("admit", None)  # check off


def test_starting_sessions_count_at_the_average_and_make_the_next_one_wait_not_fail() -> None:
    limit = 256 * MIB
    # nothing measured yet: one process starts at a time
    assert admission(MemoryUse(limit, 70 * MIB), 60 * MIB, 0, 1)[0] == "wait"
    # one settled at 60 MiB, one starting: 120 + 60 * 2 > 230, but it hangs on the starting one
    assert admission(MemoryUse(limit, 120 * MIB), 60 * MIB, 1, 1)[0] == "wait"
    assert admission(MemoryUse(limit, 100 * MIB), 60 * MIB, 1, 1) == ("admit", None)  # 100 + 40 * 2 <= 230
