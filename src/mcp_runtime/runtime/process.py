"""The process runtime: each deployed server runs as a local subprocess of `mcp-runtime up`.

A stdio server (`spec.stdio`) runs behind `mcp-runtime bridge stdio`, which starts one process of it
per MCP session; to this runtime the bridge is an ordinary server.

A server's `spec.run.command` starts in its working directory with `PORT` (picked once, kept across
restarts of `up` in `run/`) and `MCP_PATH` set. It counts as Ready once MCP `initialize` answers on
that port from a process of this start (ownership, see `ownership.py`). A crash restarts it with
capped exponential backoff; a server that dies before it is ever ready shows phase Error with the
tail of its log, so the user sees why without digging for files. One that is only slow shows Error
after the ready timeout and becomes Ready when it answers.

Servers never outlive the runtime: each runs in its own process group with the kernel's parent-death
signal, and a lifeline process stops every group and every descendant when the runtime dies, even by
SIGKILL. A new runtime on the same data directory first stops whatever an earlier one left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcp_runtime.resources import MCPServer, ServerPhase
from mcp_runtime.runtime import lifeline
from mcp_runtime.runtime.discovery import DiscoveryError, probe_initialize
from mcp_runtime.runtime.ownership import (
    LAUNCH_ENV,
    OWNER_ENV,
    DataDirLock,
    Lifeline,
    ServerRecord,
    listener_owned_by,
    owner_id,
    parent_death_signal,
    port_is_free,
    reap_leftovers,
)

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 2000
READY_TIMEOUT = 60.0
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # a process that ran this long resets the backoff
STOP_GRACE = 5.0  # SIGTERM, then SIGKILL after this long
OUTPUT_DRAIN = 2.0  # seconds to read what an exited server wrote last
LOG_LINE_LIMIT = 64 * 1024  # a longer output line is cut
LATE_PROBE_INTERVAL = 2.0  # between readiness probes once the ready timeout has passed
STDIO_RETRY = 5.0  # between readiness probes of a stdio server whose process failed (each starts one)


@dataclass
class RuntimeStatus:
    """What the runtime reports about one server; the platform writes it into MCPServer.status."""

    phase: ServerPhase
    message: str
    upstream_url: str | None = None
    restarts: int = 0
    pid: int | None = None


StatusCallback = Callable[[str, str, RuntimeStatus], None]


def bridge_command(argv: list[str], max_sessions: int, idle_timeout: str) -> list[str]:
    """`mcp-runtime bridge stdio` (port and path from the environment) in front of a stdio command."""
    return [sys.executable, "-m", "mcp_runtime", "bridge", "stdio", "--max-sessions", str(max_sessions),
            "--idle-timeout", idle_timeout, "--", *argv]


def pick_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedServer:
    namespace: str
    name: str
    command: list[str]
    working_dir: Path
    mcp_path: str
    env: dict[str, str]
    log_file: Path
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    output: asyncio.StreamReader | None = None  # the process's stdout and stderr, one pipe we own
    output_transport: asyncio.ReadTransport | None = None
    task: asyncio.Task[None] | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    listeners: set[asyncio.Queue[str]] = field(default_factory=set)
    restarts: int = 0
    launch: str = ""
    problem: str | None = None  # why the last start was refused, when the runtime refused it
    stopping: bool = False
    probe_timeout: float = 2.0  # a stdio server gets one long probe: each probe starts a process behind the bridge
    bridged: bool = False  # a stdio server behind `mcp-runtime bridge stdio`
    status: RuntimeStatus = field(default_factory=lambda: RuntimeStatus(ServerPhase.pending, "starting"))

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.mcp_path}"

    def tail(self, count: int = 20) -> list[str]:
        return list(self.lines)[-count:]


class ProcessRuntimeError(ValueError):
    """A server the process runtime cannot run; the message says what to change."""


class ProcessRuntime:
    """Runs, supervises and stops server subprocesses. One instance per `mcp-runtime up`.

    A server keeps its port across crashes and restarts of `up` (while the port stays free), so the
    gateway route in front of it stays valid. Constructing the runtime locks the data directory (one
    runtime per directory, `DataDirInUse` otherwise), stops leftovers of an earlier runtime there, and
    starts the lifeline; `shutdown` releases all three.
    """

    def __init__(self, data_dir: Path, on_status: StatusCallback | None = None,
                 ready_timeout: float = READY_TIMEOUT) -> None:
        self.log_dir = data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = data_dir / "run"
        self._on_status = on_status
        self._servers: dict[tuple[str, str], ManagedServer] = {}
        self._ready_timeout = ready_timeout
        self._owner = owner_id(data_dir)
        self._lock = DataDirLock(self.run_dir)
        self._lock.acquire()
        leftovers = reap_leftovers(self._owner)
        if leftovers:
            log.warning("stopped %d server processes an earlier mcp-runtime left running from %s: pids %s",
                        len(leftovers), data_dir, sorted(leftovers))
        self._preexec = parent_death_signal()
        self._lifeline = Lifeline(self._owner, self.log_dir / "lifeline.log")
        self._lifeline.start()

    # --- the interface the platform uses -------------------------------------------------------

    def check(self, server: MCPServer) -> str | None:
        """Why this runtime cannot run `server` (asked before the deploy is stored), or None."""
        try:
            self._build(server, server.metadata.namespace or "default")
        except ProcessRuntimeError as exc:
            return str(exc)
        return None

    @property
    def lifeline_pid(self) -> int | None:
        """The watchdog that stops every server if this runtime dies (shown by diagnostics and tests)."""
        return self._lifeline.pid

    def servers(self) -> list[tuple[str, str]]:
        return list(self._servers)

    async def deploy(self, server: MCPServer) -> None:
        """Start (or restart with the new spec) the server's process. Returns at once; see status."""
        namespace = server.metadata.namespace or "default"
        managed = self._build(server, namespace)
        await self._stop(namespace, server.metadata.name)
        managed.port = self._port_for(managed)
        self._servers[managed.key] = managed
        managed.task = asyncio.create_task(self._supervise(managed), name=f"run {namespace}/{managed.name}")

    async def delete(self, namespace: str, name: str) -> None:
        await self._stop(namespace, name)
        self._record_path(namespace, name).unlink(missing_ok=True)

    async def _stop(self, namespace: str, name: str) -> None:
        managed = self._servers.pop((namespace, name), None)
        if managed is None:
            return
        managed.stopping = True
        await self._terminate(managed)
        if managed.task is not None:
            managed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await managed.task
        if managed.output_transport is not None:
            managed.output_transport.close()

    async def shutdown(self) -> None:
        """Stop every server (Ctrl-C on `up`): SIGTERM, then SIGKILL after a grace period.

        Their ports stay recorded, so the next `up` starts them on the same ones."""
        await asyncio.gather(*(self._stop(ns, name) for ns, name in list(self._servers)))
        await asyncio.to_thread(self._lifeline.close)
        self._lock.release()

    def upstream_url(self, namespace: str, name: str) -> str | None:
        managed = self._servers.get((namespace, name))
        return managed.upstream_url if managed and managed.port else None

    def status(self, namespace: str, name: str) -> RuntimeStatus | None:
        managed = self._servers.get((namespace, name))
        return managed.status if managed else None

    def logs(self, namespace: str, name: str, tail: int = 200) -> list[str]:
        managed = self._servers.get((namespace, name))
        if managed is not None:
            return managed.tail(tail)
        path = self._log_path(namespace, name)
        if path.exists():
            return path.read_text(errors="replace").splitlines()[-tail:]
        return []

    async def follow(self, namespace: str, name: str) -> AsyncIterator[str]:
        """Yield new log lines as the process writes them, until the server is deleted."""
        managed = self._servers.get((namespace, name))
        if managed is None:
            return
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        managed.listeners.add(queue)
        try:
            while managed.key in self._servers:
                try:
                    yield await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    continue
        finally:
            managed.listeners.discard(queue)

    # --- supervision ---------------------------------------------------------------------------

    def _log_path(self, namespace: str, name: str) -> Path:
        return self.log_dir / f"{namespace}__{name}.log"

    def _record_path(self, namespace: str, name: str) -> Path:
        return ServerRecord.path(self.run_dir, namespace, name)

    def _port_for(self, managed: ManagedServer) -> int:
        """The port this server had before when nothing else holds it now; a new free port otherwise."""
        record = ServerRecord.load(self._record_path(managed.namespace, managed.name))
        if record is not None and port_is_free(record.port):
            return record.port
        if record is not None:
            log.warning("port %d of %s/%s is taken by another process; moving the server to a new port",
                        record.port, managed.namespace, managed.name)
        return pick_free_port()

    def _build(self, server: MCPServer, namespace: str) -> ManagedServer:
        command, working_dir = self._command(server)
        if not working_dir.is_dir():
            field = "stdio.workingDir" if server.spec.stdio is not None else "run.workingDir"
            raise ProcessRuntimeError(
                f"{field} {str(working_dir)!r} of server {server.metadata.name!r} is not a directory "
                "on this machine; run `server deploy` from the server's directory or fix workingDir"
            )
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable  # the interpreter of `up`, which has the SDK installed
        env = {var.name: var.value for var in server.spec.env_vars}
        if server.spec.stdio is not None:
            env.update({var.name: var.value for var in server.spec.stdio.env_vars})
        return ManagedServer(
            namespace=namespace, name=server.metadata.name, command=command, working_dir=working_dir.resolve(),
            mcp_path=server.spec.ingress_path or f"/{server.metadata.name}/mcp", env=env,
            log_file=self._log_path(namespace, server.metadata.name),
            probe_timeout=self._ready_timeout if server.spec.stdio is not None else 2.0,
            bridged=server.spec.stdio is not None,
        )

    def _command(self, server: MCPServer) -> tuple[list[str], Path]:
        """The command to start and its directory: `run.command`, or the stdio bridge in front of
        `stdio` (the same `mcp-runtime bridge stdio` podman and Kubernetes run)."""
        stdio = server.spec.stdio
        if stdio is not None:
            if stdio.secret_env_vars:
                names = ", ".join(var.name for var in stdio.secret_env_vars)
                raise ProcessRuntimeError(
                    f"server {server.metadata.name!r} takes {names} from Secrets, which the process runtime does "
                    "not hold; set them as stdio.envVars for a local run, or use podman or Kubernetes"
                )
            argv = stdio.argv()  # the bridge finds `python`, `npx`, `uvx` itself
            return bridge_command(argv, stdio.max_sessions, stdio.idle_timeout), Path(stdio.working_dir or ".")
        run = server.spec.run
        if run is None:
            raise ProcessRuntimeError(
                f"server {server.metadata.name!r} has no run command: the process runtime starts servers "
                "from `run.command` or `stdio`; deploy with --run \"python app.py\" (or `server init --run` or "
                "`--stdio-command`), or use a container runtime"
            )
        try:
            command = shlex.split(run.command)
        except ValueError as exc:
            raise ProcessRuntimeError(f"run command {run.command!r} cannot be parsed: {exc}") from None
        return command, Path(run.working_dir or ".").expanduser()

    def _report(self, managed: ManagedServer, phase: ServerPhase, message: str) -> None:
        managed.status = RuntimeStatus(phase, message, managed.upstream_url if managed.port else None,
                                       managed.restarts, managed.process.pid if managed.process else None)
        if self._on_status is not None:
            try:
                self._on_status(managed.namespace, managed.name, managed.status)
            except Exception:  # a status sink failing must not kill supervision
                log.exception("status callback failed for %s/%s", managed.namespace, managed.name)

    async def _supervise(self, managed: ManagedServer) -> None:
        backoff = BACKOFF_START
        ever_ready = False
        while not managed.stopping:
            started = time.monotonic()
            self._report(managed, ServerPhase.pending, f"starting: {' '.join(managed.command)}")
            try:
                await self._start(managed)
            except OSError as exc:
                self._note(managed, f"[mcp-runtime] cannot start {managed.command[0]!r}: {exc.strerror or exc}")
                self._report(managed, ServerPhase.error, self._error_message(managed, "could not start"))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            assert managed.process is not None
            pump = asyncio.create_task(self._pump(managed), name=f"log {managed.namespace}/{managed.name}")
            ready = await self._wait_ready(managed)
            if ready:
                ever_ready = True
                self._report(managed, ServerPhase.ready, f"serving on {managed.upstream_url}")
            code = await managed.process.wait()
            await self._reap_launch(managed)  # first: a leftover descendant would hold the log pipe open
            await self._finish_output(managed, pump)
            if managed.stopping:
                break
            managed.restarts += 1
            self._note(managed, f"[mcp-runtime] process exited with code {code}; restarting in {backoff:.1f}s")
            if time.monotonic() - started > STABLE_AFTER:
                backoff = BACKOFF_START
            what = "crashed" if ever_ready else "exited before it answered MCP initialize"
            if managed.problem:
                what, managed.problem = managed.problem, None
            self._report(managed, ServerPhase.error, self._error_message(managed, f"{what} (exit code {code})"))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _error_message(self, managed: ManagedServer, what: str) -> str:
        tail = [line for line in managed.tail(12) if not line.startswith("[mcp-runtime]")][-8:]
        return f"{what}; last log lines:\n" + "\n".join(tail) if tail else what

    async def _start(self, managed: ManagedServer) -> None:
        managed.launch = uuid.uuid4().hex
        env = {**os.environ, **managed.env, "PORT": str(managed.port), "MCP_PATH": managed.mcp_path,
               "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
               OWNER_ENV: self._owner, LAUNCH_ENV: managed.launch}
        # Output goes through a pipe we own (not asyncio's), so we can close it even while a descendant
        # that escaped every kill still holds its end. Its own session: a Ctrl-C in the terminal reaches
        # `up` only, which stops servers in order.
        read_fd, write_fd = os.pipe()
        try:
            managed.process = await asyncio.create_subprocess_exec(
                *managed.command, cwd=managed.working_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                preexec_fn=self._preexec,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        reader = asyncio.StreamReader(limit=LOG_LINE_LIMIT)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0))
        managed.output, managed.output_transport = reader, transport
        self._lifeline.watch(managed.process.pid)
        ServerRecord(port=managed.port, pid=managed.process.pid, launch=managed.launch).save(
            self._record_path(managed.namespace, managed.name))
        self._note(managed, f"[mcp-runtime] started pid {managed.process.pid} on port {managed.port}")

    async def _reap_launch(self, managed: ManagedServer, grace: float = STOP_GRACE) -> None:
        """After the direct child exited: stop what is left of its process group and every descendant
        that carries this launch's marker (so a wrapper's orphan never keeps the port)."""
        if managed.process is None:
            return
        pgid = managed.process.pid
        left = await asyncio.to_thread(lifeline.stop_all, [pgid], (LAUNCH_ENV, managed.launch), grace)
        self._lifeline.forget(pgid)
        if left:
            self._note(managed, f"[mcp-runtime] stopped {len(left)} leftover processes of pid {pgid}: {left}")

    async def _pump(self, managed: ManagedServer) -> None:
        """Copy the server's output into its log, a line at a time (an over-long line is cut, not fatal)."""
        reader = managed.output
        assert reader is not None
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:
                if end.partial:
                    self._note(managed, end.partial.decode(errors="replace"))
                return
            except asyncio.LimitOverrunError as long:
                raw = await reader.readexactly(long.consumed) + b" [line cut]"
            self._note(managed, raw.decode(errors="replace").rstrip("\n"))

    async def _finish_output(self, managed: ManagedServer, pump: asyncio.Task[None]) -> None:
        """Let the log pump drain what the exited process wrote, then close the pipe: a descendant that
        escaped (a clean environment and a session of its own) must not keep supervision waiting."""
        try:
            await asyncio.wait_for(asyncio.shield(pump), timeout=OUTPUT_DRAIN)
        except TimeoutError:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._note(managed, "[mcp-runtime] a process outside this server's control still holds its output "
                                "pipe; closed it")
        if managed.output_transport is not None:
            managed.output_transport.close()
            managed.output_transport = None

    def _note(self, managed: ManagedServer, line: str) -> None:
        managed.lines.append(line)
        with managed.log_file.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        for queue in list(managed.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(line)

    async def _wait_ready(self, managed: ManagedServer) -> bool:
        """Probe until MCP `initialize` answers from this launch; False if the process ends or stops first.

        Past the ready timeout the server shows phase Error saying so, and probing goes on (slower): a
        server that is only slow to start (a loaded machine, a cold package cache) becomes Ready when it
        answers instead of staying in Error for the life of its process.
        """
        assert managed.process is not None
        deadline = time.monotonic() + self._ready_timeout
        delay, late = 0.05, False
        while managed.process.returncode is None and not managed.stopping:
            if not late and time.monotonic() >= deadline:
                late = True
                self._report(managed, ServerPhase.error, self._error_message(
                    managed, f"no MCP answer on {managed.upstream_url} after {self._ready_timeout:.0f}s; "
                             "still waiting for it"))
            try:
                remaining = max(deadline - time.monotonic(), 0.5)
                timeout = managed.probe_timeout if late else min(managed.probe_timeout, remaining)
                await probe_initialize(managed.upstream_url, timeout=timeout)
            except DiscoveryError as exc:
                if managed.bridged and exc.reason == "protocol_error":
                    # the bridge answers, the stdio process behind it does not: say why now, keep probing
                    self._report(managed, ServerPhase.error, self._error_message(
                        managed, f"the stdio server did not start: {exc.message}"))
                    delay = STDIO_RETRY
                await asyncio.sleep(delay)
                delay = min(delay * 2, LATE_PROBE_INTERVAL if late else 0.5)
                continue
            owned = await asyncio.to_thread(listener_owned_by, managed.port, managed.launch)
            if owned is not False:
                return True
            # something that is not this server answers on its port: never adopt it
            managed.problem = (f"port {managed.port} answers MCP, but from a process this runtime did not start "
                               f"(not pid {managed.process.pid} or its children); not adopting it")
            self._note(managed, f"[mcp-runtime] {managed.problem}; moving the server to a new port")
            managed.port = pick_free_port()
            await self._terminate(managed)
            return False
        return False

    async def _terminate(self, managed: ManagedServer, grace: float = STOP_GRACE) -> None:
        """SIGTERM the server's process group, SIGKILL it after `grace`, then stop any descendant left."""
        process = managed.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        await self._reap_launch(managed, grace)
