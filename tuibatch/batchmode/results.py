"""Result lines → item outcomes: matched by key, classified, priced at the batch rate.

Matching is conservative. A line is matched to an item only through the key the service echoed
(the inline ``metadata`` or the file line's ``key``). Inline responses have been seen without
their metadata and out of order, and the order is not documented: a line without a key is never
matched by position. Its item gets no result from this job and goes back to pending (the driver
then sends the next jobs as files, whose lines always carry the key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..backends.gemini_batch import Line
from ..backends.gemini_shapes import generate_result
from ..error_body import ErrorBody
from ..policy import Kind, judge
from ..pricing import Prices
from ..states import ErrorClass, ItemState
from ..store import Attempt
from ..store.jobs import LineOutcome
from ..usage import Usage

#: the Batch API's price as a share of the interactive one: "Batch Mode ... at 50% of the
#: standard cost" (https://ai.google.dev/gemini-api/docs/batch-mode, read 2026-11-27)
BATCH_DISCOUNT = 0.5

#: google.rpc.Code → (HTTP status, canonical name), as Google's API design guide maps them
GRPC: dict[int, tuple[int, str]] = {
    1: (499, "CANCELLED"),
    2: (500, "UNKNOWN"),
    3: (400, "INVALID_ARGUMENT"),
    4: (504, "DEADLINE_EXCEEDED"),
    5: (404, "NOT_FOUND"),
    6: (409, "ALREADY_EXISTS"),
    7: (403, "PERMISSION_DENIED"),
    8: (429, "RESOURCE_EXHAUSTED"),
    9: (400, "FAILED_PRECONDITION"),
    10: (409, "ABORTED"),
    11: (400, "OUT_OF_RANGE"),
    12: (501, "UNIMPLEMENTED"),
    13: (500, "INTERNAL"),
    14: (503, "UNAVAILABLE"),
    15: (500, "DATA_LOSS"),
    16: (401, "UNAUTHENTICATED"),
}


def batch_cost(prices: Prices, model: str, usage: Usage) -> float | None:
    """USD at the batch rate; None when the model has no known price."""
    full = prices.cost_of(model, usage)
    return None if full is None else full * BATCH_DISCOUNT


@dataclass
class Matched:
    outcomes: list[LineOutcome] = field(default_factory=list)
    #: lines whose key is missing or names no item this job holds
    unmatched_lines: int = 0
    keyless_lines: int = 0


def line_outcome(seq: int, line: Line, model: str, prices: Prices) -> LineOutcome:
    if line.response is None:
        code = line.error_code if line.error_code is not None else 2
        http, status = GRPC.get(code, (500, "UNKNOWN"))
        message = (line.error_message or status)[:500]
        verdict = judge(http, ErrorBody(status=status, message=message), on_launch=True)
        permanent = verdict.kind is Kind.PERMANENT
        a = Attempt(outcome=f"line error {status}", http_code=http, message=f"{status}: {message}")
        return LineOutcome(
            seq,
            ItemState.FAILED if permanent else ItemState.PENDING,
            a,
            error_class=ErrorClass.PERMANENT if permanent else ErrorClass.TRANSIENT,
        )
    r = generate_result(line.response)
    cost = batch_cost(prices, model, r.usage)
    a = Attempt(
        outcome=r.status,
        tokens_in=r.usage.input_tokens,
        tokens_out=r.usage.output_tokens,
        tokens_thought=r.usage.thought_tokens,
        cost_usd=cost or 0.0,
    )
    if r.output is not None and not r.truncated:
        return LineOutcome(seq, ItemState.DONE, a, output=r.output, price_known=cost is not None)
    a.wasted = True
    a.message = r.stop_reason or r.error or "no answer"
    return LineOutcome(
        seq,
        ItemState.FAILED,
        a,
        error_class=ErrorClass.TRUNCATED,
        price_known=cost is not None,
        stop_reason=r.stop_reason,
    )


def match(
    held: Sequence[tuple[int, str]], lines: Sequence[Line], model: str, prices: Prices
) -> Matched:
    """*held*: (seq, key) of the items the job still holds. Each held key takes the first line
    that names it; a second line for the same key is ignored (never committed twice)."""
    by_key = {key: seq for seq, key in held}
    out = Matched()
    seen: set[int] = set()
    for line in lines:
        if line.key is None:
            out.keyless_lines += 1
            out.unmatched_lines += 1
            continue
        seq = by_key.get(line.key)
        if seq is None or seq in seen:
            out.unmatched_lines += 1
            continue
        seen.add(seq)
        out.outcomes.append(line_outcome(seq, line, model, prices))
    return out
