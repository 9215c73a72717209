"""Fault plans for the simulator: which request fails, how, and how often.

A plan is a list of rules (JSON file or Python dicts). Parsing is strict so that a typo in a
test's plan fails loudly with the rule index instead of silently injecting nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuibatch.items import key_label

#: Fault kinds and the request kind each one applies to unless the rule says otherwise.
FAULT_KINDS: dict[str, str] = {
    "http": "create",
    "per_day_quota": "create",
    "hang": "create",
    "drop": "create",
    "run_failed": "create",
    "slow": "create",
    "create_then_drop": "create",
    "lost": "get",
}

#: ``on`` values. ``create`` covers both launch kinds (interaction create and generateContent).
ON_VALUES = ("create", "get", "cancel", "generate", "any")

#: Terminal (or stuck) statuses a ``run_failed`` rule may end a run with.
RUN_FAILED_STATUSES = ("failed", "incomplete", "budget_exceeded", "requires_action", "cancelled")

#: Google's canonical status name for each HTTP code the simulator emits.
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

PER_MINUTE_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel"
PER_DAY_QUOTA = "GenerateRequestsPerDayPerProjectPerModel"
TOKENS_PER_MINUTE_QUOTA = "GenerateContentInputTokensPerModelPerMinute"

_KNOWN_KEYS = {
    "fault", "item", "contains", "any", "probability", "on", "times", "after", "code",
    "message", "retry_delay", "quota_id", "retry_after", "seconds", "status", "error_code",
    "comment",
}  # fmt: skip


@dataclass(frozen=True)
class FaultRule:
    """One parsed rule. Budgets (how often it already fired) live in the simulator, not here."""

    index: int
    fault: str
    on: str
    item: str | None = None
    item_label: str | None = None
    contains: str | None = None
    any: bool = False
    probability: float = 1.0
    times: int | None = 1
    after: int = 0
    code: int = 503
    message: str | None = None
    retry_delay: str | None = None
    quota_id: str | None = None
    retry_after: float | None = None
    seconds: float | None = None
    status: str = "failed"
    error_code: str = "INTERNAL"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def matches_route(self, route: str) -> bool:
        if self.on == "any":
            return True
        if self.on == "create":
            return route in ("create", "generate")
        return self.on == route

    def matches_item(self, item: str | None, text: str) -> bool:
        """Item rules accept the key (compared via its label) or the simulator's item id itself."""
        if self.item is not None and item not in (self.item, self.item_label):
            return False
        return not (self.contains is not None and self.contains not in text)


def _err(index: int, problem: str) -> ValueError:
    return ValueError(f"fault rule #{index}: {problem}")


def _number(
    index: int, rule: Mapping[str, Any], name: str, *, minimum: float = 0.0
) -> float | None:
    value = rule.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise _err(index, f"{name!r} must be a number >= {minimum}, got {value!r}")
    return float(value)


def _duration_text(index: int, value: Any) -> str:
    """Accept 2, 1.5 or "1.5s"; always store Google's "<seconds>s" form."""
    if isinstance(value, bool):
        raise _err(index, f"'retry_delay' must be seconds like \"1.5s\", got {value!r}")
    if isinstance(value, (int, float)) and value >= 0:
        return f"{value:g}s"
    if isinstance(value, str) and value.endswith("s"):
        try:
            if float(value[:-1]) >= 0:
                return value
        except ValueError:
            pass
    raise _err(index, f"'retry_delay' must be seconds like \"1.5s\", got {value!r}")


def parse_rule(index: int, rule: Any) -> FaultRule:
    if isinstance(rule, FaultRule):
        return rule
    if not isinstance(rule, Mapping):
        raise _err(index, f"must be an object, got {type(rule).__name__}")
    unknown = sorted(set(rule) - _KNOWN_KEYS)
    if unknown:
        raise _err(index, f"unknown field(s) {', '.join(unknown)}")
    kind = rule.get("fault")
    if kind not in FAULT_KINDS:
        raise _err(index, f"'fault' must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    on = rule.get("on", FAULT_KINDS[kind])
    if on not in ON_VALUES:
        raise _err(index, f"'on' must be one of {', '.join(ON_VALUES)}, got {on!r}")
    item = rule.get("item")
    contains = rule.get("contains")
    any_ = rule.get("any", False)
    if item is not None and not isinstance(item, str):
        raise _err(index, f"'item' must be a string, got {item!r}")
    if contains is not None and not isinstance(contains, str):
        raise _err(index, f"'contains' must be a string, got {contains!r}")
    if not isinstance(any_, bool):
        raise _err(index, f"'any' must be true or false, got {any_!r}")
    if item is None and contains is None and not any_:
        raise _err(index, "needs a match: 'item', 'contains' or \"any\": true")
    probability = _number(index, rule, "probability")
    if probability is not None and probability > 1:
        raise _err(index, f"'probability' must be within 0..1, got {probability!r}")
    times = rule.get("times", 1)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        raise _err(index, f"'times' must be a non-negative integer or null, got {times!r}")
    after = rule.get("after", 0)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise _err(index, f"'after' must be a non-negative integer, got {after!r}")
    default_code = 429 if kind == "per_day_quota" else 503
    code = rule.get("code", default_code)
    if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
        raise _err(index, f"'code' must be an HTTP error code 400..599, got {code!r}")
    status = rule.get("status", "failed")
    if status not in RUN_FAILED_STATUSES:
        raise _err(
            index, f"'status' must be one of {', '.join(RUN_FAILED_STATUSES)}, got {status!r}"
        )
    for name in ("message", "quota_id", "error_code"):
        if name in rule and not isinstance(rule[name], str):
            raise _err(index, f"{name!r} must be a string, got {rule[name]!r}")
    retry_delay = rule.get("retry_delay")
    if kind == "per_day_quota" and retry_delay is None:
        retry_delay = "3600s"
    return FaultRule(
        index=index,
        fault=kind,
        on=on,
        item=item,
        item_label=key_label(item) if item is not None else None,
        contains=contains,
        any=any_,
        probability=1.0 if probability is None else probability,
        times=times,
        after=after,
        code=code,
        message=rule.get("message"),
        retry_delay=None if retry_delay is None else _duration_text(index, retry_delay),
        quota_id=rule.get("quota_id", PER_DAY_QUOTA if kind == "per_day_quota" else None),
        retry_after=_number(index, rule, "retry_after"),
        seconds=_number(index, rule, "seconds"),
        status=status,
        error_code=rule.get("error_code", "INTERNAL"),
        raw=dict(rule),
    )


def parse_fault_plan(rules: Any) -> list[FaultRule]:
    """Validate a plan: a list of rules, or ``{"faults": [...]}`` as a file may hold it."""
    if isinstance(rules, Mapping) and "faults" in rules:
        rules = rules["faults"]
    if rules is None:
        return []
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
        raise ValueError("fault plan must be a list of rules")
    return [parse_rule(i, rule) for i, rule in enumerate(rules)]


def load_fault_plan(path: str | Path) -> list[FaultRule]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read fault plan: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return parse_fault_plan(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
