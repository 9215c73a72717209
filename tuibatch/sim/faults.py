"""Fault plans for the simulator: which request fails, how, and how often.

A plan is a list of rules (a JSON file, ``{"faults": [...]}``, or Python dicts). Parsing is strict
so that a typo fails loudly with the rule index instead of silently injecting nothing.

MATCHING (every rule needs one)
  item: KEY         the item's key (its ``tuibatch_item`` label) or the simulator's item id
  contains: TEXT    the input text contains TEXT
  any: true         every request
  on: ROUTE         create (interaction create, generateContent AND each batch line),
                    generate (generateContent and each batch line), get, cancel,
                    batch_create, batch_get, batch_list, batch_cancel,
                    batch_delete, batch_item (a batch line only), upload, download, any
                    (default: the kind's own route, below). On batch routes item matches
                    the job's display name (batch_create: contains, any line's text); on
                    upload the file's display name; on download the file name.
  times: N|null     fire at most N times (default 1; null = always)
  after: N          let the first N matching requests through
  probability: P    fire with probability P (seeded by --seed)
First matching rule with budget left wins; one rule fires per request.

REQUEST FAULTS (nothing is created, nothing is billed)
  http                code (503), message, retry_delay ("1.5s"), quota_id, retry_after (header s),
                      error_code (Interactions string code). Interactions routes answer
                      {"error": {"code": "<string>", "message": ...}}: no status, no details;
                      generateContent answers Google-RPC with QuotaFailure/RetryInfo details.
  per_day_quota       429, quotaId ...PerDay... (quota_id), retry_delay 3600s; string code
                      quota_exceeded on Interactions.
  multi_quota         429 listing three QuotaFailure violations: per-minute input tokens,
                      per-minute requests, per-day requests, with RetryInfo 47.43s.
  free_tier           429 "limit: 0" (free tier without access to the model), -FreeTier quota
                      ids with quotaValue "0"; string code quota_exceeded on Interactions.
  bad_key             400 INVALID_ARGUMENT + ErrorInfo reason API_KEY_INVALID (code: 401 or 403
                      to script another status). Also SimConfig.invalid_keys / --invalid-key.
  failed_precondition 400 FAILED_PRECONDITION; reason: location (default) | billing.
  html                a non-JSON text/html error page; code (502).
  drop                close the connection without answering.
  hang                answer nothing for `seconds` (default 3600).
A request without any API key answers 403 PERMISSION_DENIED (no rule needed).

RUN FAULTS (on create: the run exists and bills; shown as a launch in /_sim/stats)
  run_status          the run ends in `status`: any InteractionStatus (queued, in_progress,
                      requires_action, requires_continuation, idle, completed, failed, cancelled,
                      incomplete, budget_exceeded) or any other string (e.g. paused_for_review);
                      after `seconds` (default --run-seconds). queued / in_progress stay stuck
                      forever. errors[] is added when message or error_code is given.
  run_failed          the same with errors[{code: error_code (INTERNAL), message}];
                      status defaults to failed.
  slow                the run takes `seconds` (default 30).
  usage               only reshape the answer (the fields below).
  create_then_drop    the run is created, the connection closes unanswered.
  error_after_create  the run is created, then the answer is an error: code (500), message,
                      error_code; html: true for a non-JSON page. With on: get, a poll that
                      advanced the run is answered with that error.
Answer-shaping fields, allowed on every run fault (and on finish/blocked/empty_candidates):
  output: full|partial|none   how much text the answer carries (partial = its first half)
  usage: full|none            none = no usage block at all (interaction) / no usageMetadata
  cached_tokens: N            total_cached_tokens (cachedContentTokenCount), part of the input
  tool_use_tokens: N          total_tool_use_tokens (toolUsePromptTokenCount), added to total
  grounding: {TOOL: N}        grounding_tool_count [{type, count}] (google_search, google_maps,
                              retrieval), interactions only

JSON FAULTS (create: generateContent or an interaction, in JSON mode only; answered, billed)
  invalid_json        the answer is text around the JSON, so it does not parse.
  schema_mismatch     the answer is JSON that breaks the request's schema (a required
                      field of the wrong type). See structured.py for the valid answers.

ANSWER FAULTS (generateContent, answered 200 and billed)
  finish              candidates[0].finishReason = reason (any google.genai FinishReason, e.g.
                      MAX_TOKENS, SAFETY, RECITATION); output defaults to partial for MAX_TOKENS,
                      none for the others.
  blocked             no candidates; promptFeedback.blockReason = reason (SAFETY).
  empty_candidates    "candidates": [] with usage.

POLL FAULTS
  lost                (get) the run is forgotten: this and every later get/cancel is 404.
                      With on: batch_get, the same for a batch job.
  cancel_race         (cancel) the run completes just before the cancel lands: the cancel
                      answers the Interaction with status completed and its output. With
                      on: batch_cancel, the job succeeds with every line just before.

BATCH API (see jobs.py; request faults above work on every batch and file route)
  on batch_create:    create_then_drop (the job exists, the connection closes unanswered),
                      error_after_create (the job exists, the answer is an error), and:
  job_state           the job ends in `state` (any google.genai JobState, default
                      JOB_STATE_FAILED) after `seconds` (default pending + running time);
                      FAILED carries error {code (500 -> gRPC 13), message}. A state that is
                      not an end (QUEUED, PAUSED, ...) stays until cancel or expiry.
  output_late         the job reads SUCCEEDED but its output is absent for `seconds` (1).
  batch lines         (on: create or generate, the defaults, or batch_item; item matches the
                      line's tuibatch_item metadata, else its key) request faults make the
                      line an error {code: gRPC code, message}; run_status / run_failed a
                      500 (gRPC 13 INTERNAL) line error; finish, blocked, empty_candidates
                      and usage shape its response. Other kinds never fire on a line.
Admin: POST /_sim/forget {"runs": [ids]} | {"items": [keys]} | {} (all) forgets runs (404 after).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuibatch.items import key_label
from tuibatch.sim.quotas import PER_DAY_QUOTA, PER_MINUTE_QUOTA, TOKENS_PER_MINUTE_QUOTA
from tuibatch.sim.vocabulary import (
    BLOCK_REASONS,
    FINISH_REASONS,
    GROUNDING_TOOLS,
    JOB_STATES,
    OUTPUT_MODES,
)

__all__ = [
    "FAULTS_HELP",
    "FAULT_KINDS",
    "PER_DAY_QUOTA",
    "PER_MINUTE_QUOTA",
    "TOKENS_PER_MINUTE_QUOTA",
    "FaultPlan",
    "FaultRule",
    "load_fault_plan",
    "parse_fault_plan",
]

FAULTS_HELP = __doc__ or ""

#: Fault kinds and the request kind each one applies to unless the rule says otherwise.
FAULT_KINDS: dict[str, str] = {
    "http": "create",
    "per_day_quota": "create",
    "multi_quota": "create",
    "free_tier": "create",
    "bad_key": "create",
    "failed_precondition": "create",
    "html": "create",
    "hang": "create",
    "drop": "create",
    "run_status": "create",
    "run_failed": "create",
    "slow": "create",
    "usage": "create",
    "create_then_drop": "create",
    "error_after_create": "create",
    "invalid_json": "create",
    "schema_mismatch": "create",
    "finish": "generate",
    "blocked": "generate",
    "empty_candidates": "generate",
    "lost": "get",
    "cancel_race": "cancel",
    "job_state": "batch_create",
    "output_late": "batch_create",
}
#: Kinds after which a run exists (interactions) or an answer was produced (generateContent).
RUN_KINDS = frozenset(
    {"run_status", "run_failed", "slow", "usage", "create_then_drop", "error_after_create"}
) | {"invalid_json", "schema_mismatch"}
#: Kinds that spoil a JSON-mode answer (structured.py)
JSON_KINDS = frozenset({"invalid_json", "schema_mismatch"})
ANSWER_KINDS = frozenset({"finish", "blocked", "empty_candidates"})
#: Kinds whose answer is an error, nothing created (also what they do to a batch line).
ERROR_KINDS = frozenset(
    {"http", "per_day_quota", "multi_quota", "free_tier", "bad_key", "failed_precondition", "html"}
)
#: Kinds that can fire on a batch line.
LINE_KINDS = ERROR_KINDS | ANSWER_KINDS | {"usage", "run_status", "run_failed"}

#: ``on`` values. ``create`` covers both launch kinds (interaction create and generateContent).
BATCH_ROUTES = (
    "batch_create", "batch_get", "batch_list", "batch_cancel", "batch_delete", "batch_item",
    "upload", "download",
)  # fmt: skip
ON_VALUES = ("create", "get", "cancel", "generate", *BATCH_ROUTES, "any")
_DEFAULT_CODE = {
    "per_day_quota": 429, "error_after_create": 500, "html": 502, "bad_key": 400, "job_state": 500,
}  # fmt: skip
_REASONS = {
    "finish": FINISH_REASONS,
    "blocked": BLOCK_REASONS,
    "failed_precondition": ("location", "billing"),
}
_DEFAULT_REASON = {"finish": "MAX_TOKENS", "blocked": "SAFETY", "failed_precondition": "location"}

_KNOWN_KEYS = {
    "fault", "item", "contains", "any", "probability", "on", "times", "after", "code",
    "message", "retry_delay", "quota_id", "retry_after", "seconds", "status", "error_code",
    "comment", "reason", "output", "usage", "cached_tokens", "tool_use_tokens", "grounding",
    "html", "state",
}  # fmt: skip


@dataclass(frozen=True)
class FaultRule:
    """One parsed rule. Budgets (how often it already fired) live in ``FaultPlan``."""

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
    error_code: str | None = None
    reason: str | None = None
    output: str | None = None
    usage: str = "full"
    cached_tokens: int = 0
    tool_use_tokens: int = 0
    grounding: dict[str, int] = field(default_factory=dict, compare=False)
    html: bool = False
    state: str = "JOB_STATE_FAILED"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def matches_route(self, route: str) -> bool:
        if self.on == "any":
            return True
        if self.on == "create":
            return route in ("create", "generate", "batch_item")
        if self.on == "generate":
            return route in ("generate", "batch_item")
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


def _count(index: int, rule: Mapping[str, Any], name: str) -> int:
    value = rule.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _err(index, f"{name!r} must be a non-negative integer, got {value!r}")
    return value


def _choice(index: int, rule: Mapping[str, Any], name: str, allowed: Iterable[str]) -> Any:
    value = rule.get(name)
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        raise _err(index, f"{name!r} must be one of {', '.join(allowed)}, got {value!r}")
    return value


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


def _grounding(index: int, value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in value.items()
    ):
        raise _err(index, f"'grounding' must map a tool ({', '.join(GROUNDING_TOOLS)}) to a count")
    return dict(value)


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
    on = _choice(index, rule, "on", ON_VALUES) or FAULT_KINDS[kind]
    item, contains, any_ = rule.get("item"), rule.get("contains"), rule.get("any", False)
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
    after = _count(index, rule, "after")
    code = rule.get("code", _DEFAULT_CODE.get(kind, 503))
    if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
        raise _err(index, f"'code' must be an HTTP error code 400..599, got {code!r}")
    status = rule.get("status", "failed")
    if not isinstance(status, str) or not status:
        raise _err(index, f"'status' must be a non-empty string, got {status!r}")
    for name in ("message", "quota_id", "error_code"):
        if name in rule and not isinstance(rule[name], str):
            raise _err(index, f"{name!r} must be a string, got {rule[name]!r}")
    reason = rule.get("reason", _DEFAULT_REASON.get(kind))
    if "reason" in rule and kind not in _REASONS:
        raise _err(index, f"'reason' applies to {', '.join(_REASONS)} only")
    if kind in _REASONS and reason not in _REASONS[kind]:
        raise _err(index, f"'reason' must be one of {', '.join(_REASONS[kind])}, got {reason!r}")
    html = rule.get("html", kind == "html")
    if not isinstance(html, bool):
        raise _err(index, f"'html' must be true or false, got {html!r}")
    state = rule.get("state", "JOB_STATE_FAILED")
    if "state" in rule and kind != "job_state":
        raise _err(index, "'state' applies to job_state only")
    if state not in JOB_STATES:
        raise _err(index, f"'state' must be one of {', '.join(JOB_STATES)}, got {state!r}")
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
        error_code=rule.get("error_code"),
        reason=reason,
        output=_choice(index, rule, "output", OUTPUT_MODES),
        usage=_choice(index, rule, "usage", ("full", "none")) or "full",
        cached_tokens=_count(index, rule, "cached_tokens"),
        tool_use_tokens=_count(index, rule, "tool_use_tokens"),
        grounding=_grounding(index, rule.get("grounding")),
        html=html,
        state=state,
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


class FaultPlan:
    """A parsed plan and how often each rule has matched and fired."""

    def __init__(self, rules: Any = None) -> None:
        self.rules: list[FaultRule] = parse_fault_plan(rules)
        self.reset()

    def reset(self) -> None:
        self._seen = [0] * len(self.rules)
        self._fired = [0] * len(self.rules)

    def pick(
        self,
        route: str,
        item: str | None,
        text: str,
        rng: random.Random,
        kinds: frozenset[str] | None = None,
    ) -> FaultRule | None:
        """First matching rule (of ``kinds``, when given) with budget left, or None."""
        for i, rule in enumerate(self.rules):
            if kinds is not None and rule.fault not in kinds:
                continue
            if not rule.matches_route(route) or not rule.matches_item(item, text):
                continue
            if rule.times is not None and self._fired[i] >= rule.times:
                continue
            self._seen[i] += 1
            if self._seen[i] <= rule.after:
                continue
            if rule.probability < 1.0 and rng.random() >= rule.probability:
                continue
            self._fired[i] += 1
            return rule
        return None
