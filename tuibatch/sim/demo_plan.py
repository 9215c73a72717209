"""The demo's fault plan: the failures a real 200-item run meets, compressed into a minute.

Rules address items by position in ``keys`` (1-based, like article-0137), so the plan also
works for other key names; positions beyond the batch are skipped.
"""

from __future__ import annotations

from typing import Any

from tuibatch.sim.faults import PER_MINUTE_QUOTA

#: 1-based positions used by the plan (documented so the demo script can point at them).
BURST_503 = range(135, 141)
STORM_429 = range(60, 76)
PERMANENT_400 = (42, 163)
RUN_FAILED = (99,)
SLOW = (180,)
IN_DOUBT = (150,)
#: the first answer is not valid JSON; the retry (--invalid-output-retries 1) is
INVALID_JSON = (120,)


def demo_fault_plan(keys: list[str], *, in_doubt: bool = False) -> list[dict[str, Any]]:
    """503 burst around 137, a 429 storm, two permanent 400s, one failed run, one slow item,
    one answer that is not valid JSON the first time.

    ``in_doubt`` adds a ``create_then_drop`` (the server starts the run but the answer is
    lost), which shows reconciliation instead of a duplicate launch.
    """

    def key(pos: int) -> str | None:
        return keys[pos - 1] if 1 <= pos <= len(keys) else None

    plan: list[dict[str, Any]] = []

    def add(pos: int, rule: dict[str, Any]) -> None:
        k = key(pos)
        if k is not None:
            plan.append({"item": k, **rule})

    for pos in PERMANENT_400:
        add(
            pos,
            {
                "fault": "http",
                "code": 400,
                "times": None,
                "message": "Invalid value at 'input': the document exceeds the allowed size.",
            },
        )
    for pos in BURST_503:
        add(
            pos,
            {
                "fault": "http",
                "code": 503,
                "times": 2,
                "message": "The model is overloaded. Please try again later.",
            },
        )
    for pos in STORM_429:
        add(
            pos,
            {
                "fault": "http",
                "code": 429,
                "times": 1,
                "quota_id": PER_MINUTE_QUOTA,
                "retry_delay": "2s",
                "message": "You exceeded your current quota. Please retry in 2s.",
            },
        )
    for pos in RUN_FAILED:
        add(
            pos,
            {
                "fault": "run_failed",
                "error_code": "INTERNAL",
                "message": "The agent stopped: the source could not be retrieved.",
            },
        )
    for pos in SLOW:
        add(pos, {"fault": "slow", "seconds": 8})
    for pos in INVALID_JSON:
        add(pos, {"fault": "invalid_json", "times": 1})
    if in_doubt:
        for pos in IN_DOUBT:
            add(pos, {"fault": "create_then_drop"})
    return plan
