"""One stdio MCP server process: start it, read its JSON-RPC lines, write ours, stop its whole tree.

Hand-written rather than the SDK's `stdio_client` because the bridge needs what that client does not
give: a bound on stdout line length (a server that writes without newlines must not make us buffer
without end), stderr copied line by line into our log with the session's tag, the exit code for the
error the client sees, and a process group of its own so stopping it stops what it started (`npx` runs
`node`, `uvx` runs `python`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter
from pydantic import ValidationError

log = logging.getLogger(__name__)

DEFAULT_MAX_LINE = 4 * 1024 * 1024
STDERR_LINE_LIMIT = 64 * 1024
STOP_GRACE = 3.0


class ChildProtocolError(Exception):
    """The process broke the stdio transport (a line over the limit); the session cannot go on."""


def resolve_command(argv: Sequence[str]) -> list[str]:
    """`argv` with its program found on PATH, or next to this interpreter (a venv's `uvx`, `mcp-runtime`);
    `python` is this interpreter.

    Raises FileNotFoundError naming the program and how to get it."""
    program = argv[0]
    if program in ("python", "python3"):
        return [sys.executable, *argv[1:]]  # this interpreter: where mcp-runtime (and the MCP SDK) is installed
    if os.sep in program:
        return list(argv)
    found = shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))
    if found is None:
        hint = {"npx": "install Node.js and npm", "uvx": "pip install uv"}.get(program, "install it or fix the path")
        raise FileNotFoundError(f"{program!r} is not on PATH: {hint}")
    return [found, *argv[1:]]


class StdioChild:
    """A running stdio server. `receive()` yields its messages; `send()` writes one line to its stdin."""

    def __init__(self, process: anyio.abc.Process, tag: str, max_line: int) -> None:
        self.process = process
        self.tag = tag
        assert process.stdout is not None and process.stdin is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self._stdin = process.stdin
        self._max_line = max_line
        self._send_lock = anyio.Lock()
        self._stopped = False

    @classmethod
    async def start(cls, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
                    tag: str = "", max_line: int = DEFAULT_MAX_LINE) -> StdioChild:
        command = resolve_command(argv)
        process = await anyio.open_process(
            command, stdin=-1, stdout=-1, stderr=-1, cwd=cwd,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        log.info("[%s] started pid %d: %s", tag, process.pid, " ".join(argv))
        return cls(process, tag, max_line)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def send(self, message: JSONRPCMessage) -> None:
        line = message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        async with self._send_lock:
            await self._stdin.send(line)

    async def receive(self) -> JSONRPCMessage | None:
        """The next JSON-RPC message on stdout; None at end of output. A line that is not JSON-RPC is
        logged and skipped (servers that print a banner on stdout still work); an over-long one raises."""
        while True:
            try:
                raw = await self._stdout.receive_until(b"\n", self._max_line)
            except anyio.DelimiterNotFound:
                raise ChildProtocolError(
                    f"the server wrote a line longer than {self._max_line} bytes on stdout") from None
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.ClosedResourceError,
                    anyio.BrokenResourceError):
                return None
            text = raw.strip()
            if not text:
                continue
            try:
                return jsonrpc_message_adapter.validate_json(text, by_name=False)
            except ValidationError:
                log.warning("[%s] stdout line is not JSON-RPC, ignored: %s", self.tag,
                            text[:200].decode(errors="replace"))

    async def pump_stderr(self) -> None:
        """Copy stderr into our log, a line at a time (over-long lines are cut)."""
        assert self.process.stderr is not None
        stream = BufferedByteReceiveStream(self.process.stderr)
        while True:
            try:
                raw = await stream.receive_until(b"\n", STDERR_LINE_LIMIT)
            except anyio.DelimiterNotFound:
                raw = (await stream.receive_exactly(STDERR_LINE_LIMIT)) + b" [line cut]"
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.ClosedResourceError,
                    anyio.BrokenResourceError):
                return
            log.info("[%s] %s", self.tag, raw.decode(errors="replace").rstrip())

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """Close stdin (the stdio way to ask a server to exit), then SIGTERM the process group, then
        SIGKILL it; every descendant in the group goes with it."""
        if self._stopped:
            with anyio.CancelScope(shield=True):
                await self.process.wait()
            return self.process.returncode
        self._stopped = True
        with anyio.CancelScope(shield=True):
            await self._close_stdin()
            with anyio.move_on_after(grace / 2):
                await self.process.wait()
            await self._signal_group(signal.SIGTERM, grace / 2)
            await self._signal_group(signal.SIGKILL, grace)
            log.info("[%s] pid %d stopped (exit code %s)", self.tag, self.pid, self.process.returncode)
        return self.process.returncode

    async def _close_stdin(self) -> None:
        with contextlib.suppress(Exception):  # already closed, or the pipe broke with the process
            await self._stdin.aclose()

    async def _signal_group(self, sig: signal.Signals, wait: float) -> None:
        try:
            os.killpg(self.pid, sig)  # the group outlives the leader when a descendant holds it
        except (ProcessLookupError, PermissionError):
            return
        with anyio.move_on_after(wait):
            await self.process.wait()
