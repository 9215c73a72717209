"""The values Google's types allow, copied from the google-genai SDK (3.6.x).

``tests/test_sim_vocabulary.py`` reads the installed SDK and fails when it lists a value these
tuples do not, so the simulator can be taught every answer the SDK can parse.
"""

from __future__ import annotations

#: ``Interaction.status`` (``_gaos/types/interactions/interaction.py`` ``InteractionStatus``;
#: the SDK also accepts any other string).
INTERACTION_STATUSES = (
    "queued",
    "in_progress",
    "requires_action",
    "requires_continuation",
    "idle",
    "completed",
    "failed",
    "cancelled",
    "incomplete",
    "budget_exceeded",
)
#: Statuses after which a run never changes again, even when cancelled.
FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete", "budget_exceeded"})
#: A status the SDK does not list: clients must still end such a run in bounded time.
UNKNOWN_STATUS = "paused_for_review"

#: ``google.genai.types.FinishReason`` (``Candidate.finishReason`` of generateContent).
FINISH_REASONS = (
    "FINISH_REASON_UNSPECIFIED",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "RECITATION",
    "LANGUAGE",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_OTHER",
    "NO_IMAGE",
    "IMAGE_RECITATION",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
    "MISSING_THOUGHT_SIGNATURE",
    "MALFORMED_RESPONSE",
    "ESCALATION",
    "PUP_LIMITED_DISABLED",
    "CONTINUATION",
    "MODEL_ARMOR",
)
#: ``google.genai.types.BlockedReason`` (``promptFeedback.blockReason``).
BLOCK_REASONS = (
    "BLOCKED_REASON_UNSPECIFIED",
    "SAFETY",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "IMAGE_SAFETY",
    "MODEL_ARMOR",
    "JAILBREAK",
)
#: ``GroundingToolCount.type`` values of the Interactions ``Usage``.
GROUNDING_TOOLS = ("google_search", "google_maps", "retrieval")

#: How much of the answer a shaped run or response carries.
OUTPUT_MODES = ("full", "partial", "none")

#: ``google.genai.types.JobState``: the states ``BatchJob.state`` can take.
JOB_STATES = (
    "JOB_STATE_UNSPECIFIED",
    "JOB_STATE_QUEUED",
    "JOB_STATE_PENDING",
    "JOB_STATE_RUNNING",
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLING",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_PAUSED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_UPDATING",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)
#: What the Gemini Developer API sends in ``metadata.state`` (its ``BatchState`` enum) and the
#: JobState the SDK turns each into (``_transformers.t_job_state``). Any other string passes
#: through unchanged, so a JobState without a ``BATCH_STATE_*`` twin is sent as itself.
BATCH_STATES = {
    "BATCH_STATE_UNSPECIFIED": "JOB_STATE_UNSPECIFIED",
    "BATCH_STATE_PENDING": "JOB_STATE_PENDING",
    "BATCH_STATE_RUNNING": "JOB_STATE_RUNNING",
    "BATCH_STATE_SUCCEEDED": "JOB_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED": "JOB_STATE_FAILED",
    "BATCH_STATE_CANCELLED": "JOB_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED": "JOB_STATE_EXPIRED",
}
_WIRE_STATE = {job: wire for wire, job in BATCH_STATES.items()}
#: States after which a job never changes again (the SDK's ``BatchJob.done`` omits
#: PARTIALLY_SUCCEEDED, but nothing follows it).
ENDED_JOB_STATES = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)
#: ``google.genai.types.FileState``.
FILE_STATES = ("STATE_UNSPECIFIED", "PROCESSING", "ACTIVE", "FAILED")
#: Order of a finished job's responses: as requested, reversed, or shuffled (seeded).
RESPONSE_ORDERS = ("request", "reversed", "shuffled")


def wire_state(job_state: str) -> str:
    """The ``metadata.state`` string for a JobState, as the Gemini Developer API spells it."""
    return _WIRE_STATE.get(job_state, job_state)
