"""Pure: an analyst's verdict on an alert as a ``label.v1`` message (no Kafka, no Dash, no Flask).

Only an analyst may give a verdict: ``build_label`` refuses anyone else, so every path that
publishes a label (the Dash callback, scripts, tests) goes through the same server-side check.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.users import User
from pipeline.config import FRAUD_TYPES
from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.contracts.validation import mask_card_numbers

MAX_COMMENT = 2000


class VerdictNotAllowedError(PermissionError):
    """The user may not give verdicts (not logged in, or a viewer)."""


class InvalidVerdictError(ValueError):
    """The verdict cannot be expressed as a valid label (bad fraud type, alert fields, comment)."""


def check_may_give_verdicts(user: User | None) -> User:
    """``user`` when it is an analyst; raises VerdictNotAllowedError otherwise."""
    if user is None:
        raise VerdictNotAllowedError("log in to give verdicts")
    if not user.can_give_verdicts:
        raise VerdictNotAllowedError(f"{user.name} is a {user.role}: only analysts may give verdicts")
    return user


def build_label(
    alert: Mapping[str, Any],
    *,
    is_fraud: bool,
    fraud_type: str | None,
    user: User | None,
    now: datetime,
    comment: str | None = None,
) -> dict[str, Any]:
    """The ``label.v1`` message of ``user``'s verdict on ``alert`` (key: ``alert['card_token']``).

    Raises VerdictNotAllowedError unless ``user`` is an analyst, and InvalidVerdictError when the
    verdict would not be valid against schemas/label.v1.schema.json.
    """
    analyst = check_may_give_verdicts(user)
    if now.tzinfo is None:
        raise InvalidVerdictError("labelled_at needs a timezone")
    if is_fraud and fraud_type not in FRAUD_TYPES:
        raise InvalidVerdictError(f"choose a fraud type to confirm fraud (one of {', '.join(FRAUD_TYPES)})")
    text = (comment or "").strip() or None
    if text is not None:  # a card number typed into the comment is never published in clear
        text = mask_card_numbers(text.encode()).decode()
    if text is not None and len(text) > MAX_COMMENT:
        raise InvalidVerdictError(f"the comment is longer than {MAX_COMMENT} characters")
    label = {
        "schema_version": 1,
        "transaction_id": alert.get("transaction_id"),
        "card_token": alert.get("card_token"),
        "is_fraud": is_fraud,
        "fraud_type": fraud_type if is_fraud else None,
        "source": "analyst",
        "analyst": analyst.name,
        "comment": text,
        "labelled_at": now.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
    try:
        validator("label")(label)
    except SchemaViolation as exc:
        raise InvalidVerdictError(f"the verdict is not a valid label: {exc.message}") from None
    return label
