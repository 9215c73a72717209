"""Run ``tuibatch`` and die with ``os._exit(137)`` at a named point: a crash at a chosen instant.

    python tests/crash_worker.py POINT[:N] <tuibatch run args…>

POINT is one of the engine's probe points (``after_launch``, ``after_commit``); the process
dies at the Nth time any worker reaches it (default 1), as a ``kill -9`` there would leave it:
no cleanup, no lease released, nothing flushed but what is already committed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def crash_probe(spec: str) -> Callable[[str], None]:
    point, _, n = spec.partition(":")
    times = int(n or 1)
    seen = 0

    def probe(name: str) -> None:
        nonlocal seen
        if name == point:
            seen += 1
            if seen >= times:
                os._exit(137)

    return probe


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: crash_worker.py POINT[:N] <tuibatch run args…>")
    from tuibatch.cli import main as tuibatch_main

    tuibatch_main(sys.argv[2:], probe=crash_probe(sys.argv[1]))


if __name__ == "__main__":
    main()
