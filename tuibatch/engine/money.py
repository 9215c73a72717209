"""What the budget counts: paid costs, and runs whose cost the service did not report.

A run without usage costs *unknown*, never $0: the budget counts it at the price table's worst
case for its target, and when no worst case is known, a budget cannot be kept and the batch
pauses (the reason says so).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ledger:
    paid_usd: float = 0.0
    #: runs without usage, counted at their worst case
    worst_usd: float = 0.0
    worst_runs: int = 0
    #: runs without usage and without a worst case: no bound on what they cost
    unbounded_runs: int = 0

    def paid(self, cost: float) -> None:
        self.paid_usd += cost

    def unknown(self, worst_case: float | None) -> None:
        if worst_case is None:
            self.unbounded_runs += 1
        else:
            self.worst_usd += worst_case
            self.worst_runs += 1

    @property
    def counted_usd(self) -> float:
        return self.paid_usd + self.worst_usd

    def over(self, budget: float | None) -> str | None:
        """Why the batch must pause for *budget* now, or None."""
        if budget is None:
            return None
        if self.unbounded_runs:
            return (
                f"budget: {self.unbounded_runs} run(s) reported no usage and their target has no"
                f" known worst-case price, so ${budget:.2f} cannot be kept"
                f" (paid so far ${self.paid_usd:.4f})"
            )
        if self.counted_usd < budget:
            return None
        extra = (
            f", counting {self.worst_runs} run(s) without usage at the worst case"
            f" (${self.worst_usd:.4f})"
            if self.worst_runs
            else ""
        )
        return f"budget reached: ${self.counted_usd:.4f} of ${budget:.2f}{extra}"
