"""What the simulator saw: per-item counts, per-route and per-code totals, the request log.

``/_sim/stats`` is what tests and benchmarks read to know what would have been paid for:
``items[key]`` has ``launches`` (runs created or answers generated: billed), ``creates``
(create/generate requests, answered or not), ``gets``, ``cancels``, ``completed`` and ``runs``
(the run or response ids of that item).

``batches`` (built by the simulator, ``Simulator.batch_stats``): ``created`` (jobs ever
created), ``jobs[name]`` (``display_name``, ``state`` as a JobState, ``model``, ``source``
inline | file, ``items``, ``delivered`` and ``succeeded`` lines once ended, ``created``,
``gone``: lost | deleted | null), ``display_names`` (how many jobs carry each display name),
``items[key]`` (``jobs``: how many jobs included the item, ``job_names``, ``answered``,
``errors``; keyed by the line's ``tuibatch_item`` metadata, else its key, else the content
hash) and ``files`` (``uploaded``, ``downloads``).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

ROUTES = ("create", "get", "cancel", "generate")


@dataclass
class ItemStats:
    launches: int = 0
    creates: int = 0
    gets: int = 0
    cancels: int = 0
    completed: int = 0
    runs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "launches": self.launches,
            "creates": self.creates,
            "gets": self.gets,
            "cancels": self.cancels,
            "completed": self.completed,
            "runs": list(self.runs),
        }


class Ctx:
    """Per-request facts the recorder needs whatever way the request ends."""

    __slots__ = ("route", "item", "fault")

    def __init__(self, route: str) -> None:
        self.route = route
        self.item: str | None = None
        self.fault: str | None = None


class Stats:
    def __init__(self) -> None:
        self.items: dict[str, ItemStats] = {}
        self.by_route: dict[str, int] = dict.fromkeys(ROUTES, 0)
        self.by_code: dict[str, int] = {}
        self.log: list[tuple[float, str, str | None, int | None]] = []

    def item(self, key: str) -> ItemStats:
        stats = self.items.get(key)
        if stats is None:
            stats = self.items[key] = ItemStats()
        return stats

    def record(self, route: str, item: str | None, code: int | None, fault: str | None) -> None:
        """One answered (``code``) or unanswered (None: dropped or hung) request."""
        self.log.append((time.monotonic(), route, item, code))
        self.by_route[route] = self.by_route.get(route, 0) + 1
        key = str(code) if code is not None else ("hung" if fault == "hang" else "dropped")
        self.by_code[key] = self.by_code.get(key, 0) + 1

    def requests(self) -> list[dict[str, Any]]:
        return [{"t": t, "route": r, "item": i, "code": c} for t, r, i, c in self.log]

    def snapshot(self, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            "requests": len(self.log),
            "by_route": dict(self.by_route),
            "by_code": dict(self.by_code),
            "items": {k: v.as_dict() for k, v in self.items.items()},
            "runs": runs,
        }


class BodyLog:
    """The raw request bodies of the last ``keep`` launches (create, generateContent), as
    received: ``GET /_sim/bodies[?item=ID]`` answers them parsed, oldest first."""

    def __init__(self, keep: int) -> None:
        self._log: deque[tuple[float, str, str | None, str, bytes]] = deque(maxlen=max(keep, 0))

    def add(self, route: str, item: str | None, path: str, raw: bytes) -> None:
        if self._log.maxlen:
            self._log.append((time.monotonic(), route, item, path, raw))

    def entries(self, item: str | None = None) -> list[dict[str, Any]]:
        out = []
        for t, route, it, path, raw in self._log:
            if item is not None and it != item:
                continue
            version = path.strip("/").split("/", 1)[0]
            out.append(
                {
                    "t": t,
                    "route": route,
                    "item": it,
                    "path": path,
                    "version": version,
                    "body": json.loads(raw),
                }
            )
        return out
