"""Domain errors: few, named after what went wrong, carrying their data.

The API maps them to HTTP once (``summon.api.errors``):

- :class:`FieldInvalid` → 400 ``{"<field>": ["message"]}``
- :class:`RuleViolation` → its ``http_status`` with ``{"code": …, "detail": …}``
- :class:`NotFound` → 404 ``{"detail": "Not found."}`` (a foreign id looks exactly like a missing one)
"""

from __future__ import annotations


class SummonError(Exception):
    """Base of every error Summon raises on purpose."""


class NotFound(SummonError):
    def __init__(self, kind: str, ident: object) -> None:
        self.kind, self.ident = kind, ident
        super().__init__(f"{kind} {ident} not found")


class FieldInvalid(SummonError):
    """Input that is well-formed but wrong for one field (e.g. ``join_at`` in the past)."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class RuleViolation(SummonError):
    """A business rule refuses the request. ``code`` is machine-readable and stable."""

    code = "rule_violation"
    http_status = 400

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        self.detail, self.retry_after = detail, retry_after
        super().__init__(f"{self.code}: {detail}")


class UpdateBotFailed(RuleViolation):
    code, http_status = "update_bot_failed", 400


class BotAlreadyDispatched(RuleViolation):
    code, http_status = "bot_already_dispatched", 405


class CannotCommandCompletedBot(RuleViolation):
    code, http_status = "cannot_command_completed_bot", 400


class CannotCommandUnstartedBot(RuleViolation):
    code, http_status = "cannot_command_unstarted_bot", 400


class AdhocPoolExhausted(RuleViolation):
    code, http_status = "adhoc_pool_exhausted", 507


class ScheduledCapacityExhausted(RuleViolation):
    code, http_status = "scheduled_capacity_exhausted", 507


class IdempotencyConflict(RuleViolation):
    code, http_status = "idempotency_key_in_use", 409


class IdempotencyMismatch(RuleViolation):
    code, http_status = "idempotency_key_reused", 422


class Conflict(RuleViolation):
    """Someone else changed the bot first (fencing: the version moved)."""

    code, http_status = "conflict", 409


class StaleVersion(SummonError):
    """A change carried a fencing token (the bot's version) that is no longer current."""

    def __init__(self, bot_id: object, expected: int) -> None:
        self.bot_id, self.expected = bot_id, expected
        super().__init__(f"bot {bot_id} is no longer at version {expected}")
