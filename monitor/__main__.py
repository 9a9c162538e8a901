"""``python -m monitor``: read the settings and run the dashboard.

``python -m monitor hash-password`` prints a password hash for ``FRAUD_MONITOR_USERS`` (the
password is read from the terminal, or from standard input when it is not a terminal).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from monitor.users import ROLES, hash_password


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat it: "):
        raise ValueError("the passwords differ")
    return password


def hash_password_command(user: str | None, role: str) -> int:
    """Print the hash (and, with a user name, the FRAUD_MONITOR_USERS entry)."""
    try:
        hashed = hash_password(_read_password())
    except ValueError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    if user:
        print(json.dumps({user: {"password_hash": hashed, "role": role}}))
    else:
        print(hashed)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m monitor", description="The fraud monitor (Dash).")
    sub = parser.add_subparsers(dest="command")
    hasher = sub.add_parser("hash-password", help="print a password hash for FRAUD_MONITOR_USERS")
    hasher.add_argument("--user", help="also print the JSON entry of this user")
    hasher.add_argument("--role", choices=ROLES, default="analyst")
    args = parser.parse_args(argv)
    if args.command == "hash-password":
        return hash_password_command(args.user, args.role)
    from pipeline.tools.cli import main as fraud_main

    # The same start-up checks (settings, port, broker) and one-line errors as `fraud monitor`.
    return fraud_main(["monitor"])


if __name__ == "__main__":
    sys.exit(main())
