"""Child processes of ``openlines dev`` that stop when it stops, however it stops."""

import ctypes
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to this child when the parent dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: Sequence[str], env: dict[str, str] | None = None, output: IO[Any] | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session, so Ctrl-C reaches only the supervisor, which then
    stops the children in order; if the supervisor dies, the children die with it."""
    return subprocess.Popen(
        list(args),
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
