"""Result lines → item outcomes: matched by key, classified, priced at the batch rate.

Matching is conservative. A line is matched to an item only through the key the service echoed
(the inline ``metadata`` or the file line's ``key``). Inline responses have been seen without
their metadata and out of order, and the order is not documented: a line without a key is never
matched by position. Its item gets no result from this job and goes back to pending (the driver
then sends the next jobs as files, whose lines always carry the key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.gemini_batch import Line
from ..backends.gemini_shapes import generate_result
from ..error_body import ErrorBody
from ..output_check import check_output
from ..policy import Cause, Kind, judge
from ..pricing import BATCH_DISCOUNT, Prices
from ..request_sdk import output_contract
from ..states import ErrorClass, ItemState
from ..store import Attempt
from ..store.jobs import LineOutcome
from ..usage import Usage

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


@dataclass(frozen=True)
class Contract:
    """What an item's answer must be: JSON (``application/json``), matching ``schema`` when
    one is given (``request_sdk.output_contract`` of its request); and how many invalid answers
    it may have before it fails (``--invalid-output-retries``)."""

    expects_json: bool = False
    schema: dict[str, Any] | None = None
    invalid_retries: int = 1
    accept_truncated: bool = False


NO_CONTRACT = Contract()


def contract_of(
    request_json: str | None, invalid_retries: int, *, accept_truncated: bool = False
) -> Contract:
    """The contract of a stored request (none for a first-release row without one)."""
    if request_json is None:
        return Contract(accept_truncated=accept_truncated)
    expects_json, schema = output_contract(json.loads(request_json))
    return Contract(expects_json, schema, invalid_retries, accept_truncated)


def line_outcome(
    seq: int, line: Line, model: str, prices: Prices, contract: Contract = NO_CONTRACT
) -> LineOutcome:
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
    kept = r.truncated and contract.accept_truncated
    if r.output is not None and (kept or not r.truncated):
        if contract.expects_json:
            return _checked(seq, a, r.output, contract, price_known=cost is not None)
        if kept:  # --accept-truncated, as on the interactive path (engine.judge)
            a.message = f"kept although cut short ({r.stop_reason or 'no text'})"
        return LineOutcome(
            seq,
            ItemState.DONE,
            a,
            output=r.output,
            price_known=cost is not None,
            stop_reason=r.stop_reason if kept else None,
        )
    a.wasted = True
    a.message = r.stop_reason or r.error or "no answer"
    return LineOutcome(
        seq,
        ItemState.FAILED,
        a,
        error_class=ErrorClass.TRUNCATED,
        price_known=cost is not None,
        stop_reason=r.stop_reason,
        cause=Cause.TRUNCATED.value,
    )


def _checked(
    seq: int, a: Attempt, output: str, contract: Contract, *, price_known: bool
) -> LineOutcome:
    """A structured answer checked like the interactive one (``engine.judge``): valid → done
    with its JSON value; invalid → a wasted answer, sent again or failed (``store.jobs``)."""
    checked = check_output(output, contract.schema)
    if checked.ok:
        value = json.dumps(checked.value, ensure_ascii=False)
        return LineOutcome(
            seq, ItemState.DONE, a, output=output, output_json=value, price_known=price_known
        )
    a.wasted = True
    a.message = f"invalid output: {checked.error}"
    return LineOutcome(
        seq,
        ItemState.FAILED,
        a,
        error_class=ErrorClass.INVALID_OUTPUT,
        price_known=price_known,
        cause=Cause.INVALID_OUTPUT.value,
        invalid_retries=contract.invalid_retries,
    )


def match(
    held: Sequence[tuple[int, str]],
    lines: Sequence[Line],
    model: str,
    prices: Prices,
    contracts: Mapping[int, Contract] | None = None,
) -> Matched:
    """*held*: (seq, key) of the items the job still holds. Each held key takes the first line
    that names it; a second line for the same key is ignored (never committed twice).
    *contracts*: per seq, what its answer must be (structured output); none: any text."""
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
        contract = (contracts or {}).get(seq, NO_CONTRACT)
        out.outcomes.append(line_outcome(seq, line, model, prices, contract))
    return out
