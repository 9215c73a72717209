"""Who holds a lease, and whether that holder is provably dead.

An owner id is ``host:pid:start`` where *start* is the kernel's start time of the
process, so a recycled pid never passes for the process that took the lease.
"""

from __future__ import annotations

import os
import socket
import time
from functools import cache


def _proc_start(pid: int) -> str | None:
    """Start time of *pid* in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else "?"


@cache
def hostname() -> str:
    return socket.gethostname()


def current_owner() -> str:
    pid = os.getpid()
    start = _proc_start(pid) if os.path.exists("/proc/self/stat") else None
    return f"{hostname()}:{pid}:{start or int(time.time())}"


def is_dead(owner: str | None) -> bool:
    """True only when the owner is on this host and certainly not running any more."""
    if not owner:
        return True
    try:
        host, pid_s, start = owner.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if host != hostname():
        return False
    if os.path.exists("/proc/self/stat"):
        now = _proc_start(pid)
        return now is None or (now != "?" and now != start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
