"""The durable event spool: FIFO, bounded, thread-safe, and on disk the moment append returns."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mcp_runtime.sentinel.spool import EventSpool

SRC = Path(__file__).resolve().parents[2] / "src"


def payloads(start: int, count: int) -> list[str]:
    return [f'{{"n":{i}}}' for i in range(start, start + count)]


def test_fifo_peek_then_ack(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool.db")
    assert spool.append(payloads(0, 5)) == 5
    assert spool.append(payloads(5, 5)) == 5
    first = spool.peek(4)
    assert [row.payload for row in first] == payloads(0, 4)
    assert [row.payload for row in spool.peek(4)] == payloads(0, 4)  # peek does not remove
    assert spool.ack([row.seq for row in first]) == 4
    assert spool.depth == len(spool) == 6
    assert [row.payload for row in spool.peek(100)] == payloads(4, 6)
    spool.close()


def test_spool_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = EventSpool(path)
    spool.append(payloads(0, 3))
    spool.ack([spool.peek(1)[0].seq])
    spool.close()
    again = EventSpool(path)
    assert again.depth == 2
    assert [row.payload for row in again.peek(10)] == payloads(1, 2)
    again.append(payloads(3, 1))
    assert [row.payload for row in again.peek(10)] == payloads(1, 3)
    again.close()


def test_spool_survives_a_killed_process(tmp_path: Path) -> None:
    """Append in another process, SIGKILL it without any cleanup: every appended event is on disk."""
    path = tmp_path / "spool.db"
    script = (
        "import sys, time\n"
        "from mcp_runtime.sentinel.spool import EventSpool\n"
        f"spool = EventSpool({str(path)!r})\n"
        "for i in range(50):\n"
        "    spool.append([f'{{\"n\":{i * 10 + j}}}' for j in range(10)])\n"
        "print('appended', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "appended"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    spool = EventSpool(path)
    assert spool.depth == 500
    assert [row.payload for row in spool.peek(500)] == payloads(0, 500)
    spool.close()


def test_spool_is_bounded_and_refuses_the_newest(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool.db", max_events=7)
    assert spool.append(payloads(0, 5)) == 5
    assert spool.append(payloads(5, 5)) == 2
    assert spool.append(payloads(10, 1)) == 0
    assert [row.payload for row in spool.peek(100)] == payloads(0, 7)
    spool.ack([spool.peek(3)[-1].seq])
    assert spool.append(payloads(10, 5)) == 1
    spool.close()


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool.db")

    def writer(base: int) -> None:
        for i in range(20):
            spool.append(payloads(base + i * 5, 5))

    threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = spool.peek(10_000)
    assert len(rows) == spool.depth == 600
    # each writer's events keep their own order
    for n in range(6):
        mine = [r.payload for r in rows if 1000 * n <= int(r.payload[5:-1]) < 1000 * (n + 1)]
        assert mine == payloads(n * 1000, 100)
    spool.close()


def test_spool_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "spool.db"
    EventSpool(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_unreadable_spool_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not a database" * 100)
    spool = EventSpool(path)
    assert spool.depth == 0
    spool.append(payloads(0, 1))
    spool.close()
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert aside and aside[0].read_bytes().startswith(b"this is not a database")
    assert "unreadable" in caplog.text


def test_in_memory_spool_and_closed_spool(tmp_path: Path) -> None:
    spool = EventSpool(None, max_events=3)
    assert spool.append(payloads(0, 4)) == 3
    spool.close()
    with pytest.raises(RuntimeError):
        spool.append(payloads(0, 1))
