"""Running the real program on a pseudo-terminal of a chosen size."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Mapping, Sequence
from pathlib import Path

# CSI and OSC sequences: colours, cursor moves, line erases, hyperlinks.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_on_terminal(
    args: Sequence[str | Path],
    env: Mapping[str, str] | None = None,
    *,
    columns: int = 200,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """Run ``python -m fda_vault ARGS`` with stdin, stdout and stderr on a terminal of
    ``columns`` columns; (exit status, everything it wrote)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != "COLUMNS"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fda_vault", *map(str, args)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=full_env,
        close_fds=True,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the program closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(timeout=timeout), output


def screen_lines(output: bytes) -> list[str]:
    """What each line shows once carriage returns and escape sequences have acted (a
    line's last carriage-return segment; good enough for the line-level checks here)."""
    text = output.decode("utf-8", "replace").replace("\r\n", "\n")
    return [ANSI.sub("", line.split("\r")[-1]) for line in text.split("\n")]
