"""Pure: an analyst's change of a block or allow list as a ``list_update.v1`` message (no Kafka,
no Dash, no Flask).

Only an analyst may change a list: ``build_list_update`` refuses anyone else, so every path that
publishes a change (the lists section's callback, scripts, tests) goes through the same
server-side check. A value that looks like a card number is refused (cards are listed by token),
and the error texts never repeat the value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.users import User
from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.contracts.validation import text_has_card_number
from pipeline.detection.entity_lists import ENTITY_KINDS, LIST_NAMES, list_key


class ListChangeNotAllowedError(PermissionError):
    """The user may not change the lists (not logged in, or a viewer)."""


class InvalidListChangeError(ValueError):
    """The change cannot be expressed as a valid list update."""


def check_may_edit_lists(user: User | None) -> User:
    """``user`` when it is an analyst; raises ListChangeNotAllowedError otherwise."""
    if user is None:
        raise ListChangeNotAllowedError("log in to change the lists")
    if user.role != "analyst":
        raise ListChangeNotAllowedError(f"{user.name} is a {user.role}: only analysts may change the lists")
    return user


def build_list_update(
    *,
    user: User | None,
    action: str,
    list_name: str | None,
    kind: str | None,
    value: str | None,
    reason: str | None,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """(key, ``list_update.v1`` message) of ``user``'s change.

    Raises ListChangeNotAllowedError unless ``user`` is an analyst, InvalidListChangeError when the
    change is not valid (unknown list or kind, a card number instead of a token, no reason, ...).
    The error texts never repeat the value (it might be a card number).
    """
    analyst = check_may_edit_lists(user)
    if list_name not in LIST_NAMES:
        raise InvalidListChangeError("choose the block list or the allow list")
    if kind not in ENTITY_KINDS:
        raise InvalidListChangeError("choose card, device or merchant")
    text = (value or "").strip()
    why = (reason or "").strip()
    if not text:
        raise InvalidListChangeError(f"enter the {kind}'s {'token' if kind == 'card' else 'id'}")
    if text_has_card_number(text) or text_has_card_number(why):
        raise InvalidListChangeError(
            "that looks like a card number: list cards by their token (tok_…), never by the number"
        )
    if not why:
        raise InvalidListChangeError("say why (the reason is shown with every decision it causes)")
    message = {
        "schema_version": 1,
        "action": action,
        "list": list_name,
        "entity_kind": kind,
        "value": text,
        "reason": why,
        "who": analyst.name,
        "at": now.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
    try:
        validator("list_update")(message)
    except SchemaViolation as exc:
        field = ".".join(str(part) for part in exc.path[1:])
        if field == "value":
            expected = (
                "a token tok_ and 8 to 64 letters or digits"
                if kind == "card"
                else "1 to 64 of A-Z a-z 0-9 _ . : -"
            )
            raise InvalidListChangeError(
                f"not a valid {kind} {'token' if kind == 'card' else 'id'}: expected {expected}"
            ) from None
        raise InvalidListChangeError(f"not a valid list change: {exc.message}") from None
    return list_key(list_name, kind, text), message
