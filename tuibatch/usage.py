"""What a run used, as the service reported it: tokens by kind and grounding calls.

A plain value with no dependencies, so pricing, the engine and the UI can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Usage:
    """What the service reported a run used.

    ``input_tokens`` is the whole prompt, cached part included (as ``promptTokenCount`` and
    ``total_input_tokens`` count it); ``cached_tokens`` is the part of it served from the context
    cache. ``tool_use_tokens`` are tool results fed back to the model as input, counted apart
    from the prompt. ``grounding_calls`` counts the grounding tool uses (search queries) the
    response reports. For an agent every figure is the total over the many model requests of
    its run. ``known`` is False when the service sent no usage at all: the cost is then unknown,
    never $0.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0
    cached_tokens: int = 0
    tool_use_tokens: int = 0
    grounding_calls: int = 0
    known: bool = True

    @classmethod
    def unknown(cls) -> Usage:
        return cls(known=False)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.thought_tokens + self.tool_use_tokens
