"""What a run's result settles its item in: done, failed (and why), skipped; pure functions.

The engine asks here, then writes the answer in one transaction (:mod:`.runs`). Every way a
call can succeed without giving a usable answer is judged here: a run that ended badly, an
answer cut short or absent (``RunResult.truncated``), an answer that is not the JSON the
request asked for, a run that stopped making progress.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..backends.base import LaunchSpec, RunResult
from ..output_check import check_output
from ..policy import Cause
from ..states import ErrorClass, ItemState, RunStatus

#: statuses that are not progress: a run showing one of these for ``stuck_after`` fails as stuck
#: (an unknown word is judged the same way: ``RunResult.run_status`` is None for it)
NOT_PROGRESS = frozenset({RunStatus.QUEUED, RunStatus.IDLE, RunStatus.REQUIRES_CONTINUATION})

_WHY_NOT_PROGRESS = {
    RunStatus.REQUIRES_CONTINUATION: (
        "the run stopped with requires_continuation: it needs a continuation request, "
        "which tuibatch does not send"
    ),
    RunStatus.IDLE: "the run is idle, waiting for input tuibatch does not send",
}


@dataclass(frozen=True)
class Verdict:
    state: ItemState
    error_class: ErrorClass | None = None
    cause: Cause | None = None
    message: str | None = None
    stop_reason: str | None = None
    #: the checked JSON value, as JSON text
    output_json: str | None = None


def judge(r: RunResult, spec: LaunchSpec, *, accept_truncated: bool = False) -> Verdict:
    """The state a terminal run settles its item in, and why when it is not done."""
    status = r.run_status
    if status is RunStatus.CANCELLED:
        return Verdict(ItemState.SKIPPED, cause=Cause.CANCELLED, message="run cancelled")
    if status is RunStatus.REQUIRES_ACTION:
        return Verdict(
            ItemState.FAILED,
            ErrorClass.RUN,
            Cause.NEEDS_ACTION,
            "needs a human: the run stopped with requires_action",
            stop_reason=r.status,
        )
    stop = r.stop_reason or ("no text" if r.truncated else None)
    if r.truncated and (status is not RunStatus.COMPLETED or not accept_truncated):
        keep = "; --accept-truncated keeps such answers" if r.output else ""
        why = f"answer cut short or absent: {stop}{keep}"
        return Verdict(ItemState.FAILED, ErrorClass.TRUNCATED, Cause.TRUNCATED, why, stop)
    if status is not RunStatus.COMPLETED:
        why = f"run ended {r.status}" + (f": {r.error}" if r.error else "")
        return Verdict(ItemState.FAILED, ErrorClass.RUN, Cause.RUN_FAILED, why, r.status)
    if spec.expects_json:
        checked = check_output(r.output, spec.schema)
        if not checked.ok:
            why = f"invalid output: {checked.error}"
            return Verdict(
                ItemState.FAILED, ErrorClass.INVALID_OUTPUT, Cause.INVALID_OUTPUT, why, stop
            )
        value = json.dumps(checked.value, ensure_ascii=False)
        return Verdict(ItemState.DONE, stop_reason=stop if r.truncated else None, output_json=value)
    kept = f"kept although cut short ({stop})" if r.truncated else None
    return Verdict(ItemState.DONE, message=kept, stop_reason=stop if r.truncated else None)


def stuck_reason(
    r: RunResult, same_for: float, running_for: float, stuck_after: float, max_seconds: float
) -> str | None:
    """Why a run that is not over should be given up now, or None to keep polling.

    *same_for*: seconds the run has shown this status; *running_for*: seconds since launch.
    """
    status = r.run_status
    if running_for >= max_seconds:
        return f"run still {r.status} after {running_for:.0f}s (--max-run-seconds {max_seconds:g})"
    if status is None or status in NOT_PROGRESS:
        if same_for < stuck_after:
            return None
        if status in _WHY_NOT_PROGRESS:
            return _WHY_NOT_PROGRESS[status]
        what = "an unknown status" if status is None else "status"
        return f"run stuck in {what} {r.status!r} for {same_for:.0f}s (--stuck-after)"
    return None
