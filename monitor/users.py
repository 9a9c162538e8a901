"""Pure: monitor users, their roles and password checks (werkzeug's salted scrypt hashes).

Users come from ``FRAUD_MONITOR_USERS`` (JSON ``{"name": {"password_hash": "...", "role":
"viewer|analyst"}}``; make a hash with ``python -m monitor hash-password``). Without it the monitor
falls back to two demo logins, analyst/analyst and viewer/viewer, meant for the local demo only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Literal

from werkzeug.security import check_password_hash, generate_password_hash

from pipeline.config import Settings

Role = Literal["viewer", "analyst"]
ROLES: tuple[Role, ...] = ("viewer", "analyst")
DEMO_LOGINS: tuple[tuple[str, str, Role], ...] = (
    ("analyst", "analyst", "analyst"),
    ("viewer", "viewer", "viewer"),
)
"""(name, password, role) used when no users are configured: for the local demo only."""


@dataclass(frozen=True, slots=True)
class User:
    """A logged-in monitor user."""

    name: str
    role: Role

    @property
    def can_give_verdicts(self) -> bool:
        """Only analysts may confirm fraud or mark a transaction legitimate."""
        return self.role == "analyst"


@dataclass(frozen=True, slots=True)
class Account:
    """A configured user: name, role and password hash."""

    name: str
    role: Role
    password_hash: str


def hash_password(password: str) -> str:
    """A salted werkzeug hash (scrypt) of ``password`` for ``FRAUD_MONITOR_USERS``."""
    if not password:
        raise ValueError("the password must not be empty")
    return generate_password_hash(password)


@cache
def _demo_accounts() -> tuple[Account, ...]:
    return tuple(Account(name, role, hash_password(password)) for name, password, role in DEMO_LOGINS)


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not a password of anyone")


class Accounts:
    """The users who may log in; ``demo`` is True when they are the built-in demo logins."""

    def __init__(self, accounts: list[Account] | tuple[Account, ...], *, demo: bool = False) -> None:
        self._accounts = {a.name: a for a in accounts}
        self.demo = demo

    @classmethod
    def from_settings(cls, settings: Settings) -> Accounts:
        """``settings.monitor_users`` (checked when the settings were loaded), else the demo logins."""
        if settings.monitor_users is None:
            return cls(_demo_accounts(), demo=True)
        users = json.loads(settings.monitor_users.get_secret_value())
        return cls([Account(name, entry["role"], entry["password_hash"]) for name, entry in users.items()])

    @property
    def names(self) -> list[str]:
        return sorted(self._accounts)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs, else None (unknown names take as long to refuse)."""
        account = self._accounts.get(name)
        if account is None:
            check_password_hash(_dummy_hash(), password)
            return None
        if not password or not check_password_hash(account.password_hash, password):
            return None
        return User(account.name, account.role)

    def user(self, name: str) -> User | None:
        """The user called ``name`` as configured now, or None."""
        account = self._accounts.get(name)
        return None if account is None else User(account.name, account.role)


def demo_notice() -> str:
    """What the monitor prints at start-up when it falls back to the demo logins."""
    logins = ", ".join(f"{name}/{password} ({role})" for name, password, role in DEMO_LOGINS)
    return (
        f"No FRAUD_MONITOR_USERS configured: demo logins {logins}. These are for the local demo only; "
        "set FRAUD_MONITOR_USERS (hashes from `python -m monitor hash-password`) anywhere else."
    )
