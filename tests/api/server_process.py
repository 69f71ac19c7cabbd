"""Spawning `wasync serve` / `wasync demo` as a user would, and reading what it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

WASYNC = str(Path(sys.executable).parent / "wasync")
_URL = re.compile(r"web UI:\s+(http://[^/\s]+)")
_KEY = re.compile(r"#key=(\S+)")


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    base_url: str = ""
    key: str | None = None
    reader: threading.Thread | None = None

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl+C, as a person stops it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(10)  # it ends at EOF, now that the process is gone
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


def spawn(
    args: list[str],
    env: dict[str, str] | None = None,
    ready: float = 60.0,
    command: list[str] | None = None,
) -> ServerProcess:
    """Start `wasync ARGS` (or `COMMAND ARGS`) and wait until it prints its address."""
    proc = subprocess.Popen(
        [*(command or [WASYNC]), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )
    server = ServerProcess(proc)
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.lines.append(line)
            if m := _URL.search(line):
                server.base_url = m.group(1)
                if k := _KEY.search(line):
                    server.key = k.group(1)
            if "Press Ctrl+C" in line:
                started.set()
        started.set()

    server.reader = threading.Thread(target=read, daemon=True)
    server.reader.start()
    deadline = time.monotonic() + ready
    while not started.wait(0.05):
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"server did not start:\n{server.output()}")
    return server
