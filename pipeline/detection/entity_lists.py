"""Pure: block and allow lists of cards, devices and merchants, kept up to date from list updates.

The rule file's lists (``RuleSet.blocked``, ``RuleSet.allowed_cards``) stay in force; the entries
published to the list-updates topic (``schemas/list_update.v1.schema.json``) are added and removed
on top of them. A block wins over an allow; among blocks the rule file's come first, then cards,
devices, merchants. No Kafka here: the edges (pipeline/kafka/list_topic.py, the monitor) feed ``apply``.

Message key: ``<list>:<entity_kind>:<value>`` (``block:card:tok_4f9a2c1b7d3e``). The value
``add`` / ``remove`` sets or clears the entry; a null value (tombstone) clears it too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.detection.rules import RuleSet

ListName = Literal["block", "allow"]
EntityKind = Literal["card", "device", "merchant"]
LIST_NAMES: tuple[ListName, ...] = ("block", "allow")
ENTITY_KINDS: tuple[EntityKind, ...] = ("card", "device", "merchant")
TRANSACTION_FIELD: dict[str, str] = {"card": "card_token", "device": "device_id", "merchant": "merchant_id"}
RULE_FILE_KIND: dict[str, str] = {"card": "cards", "device": "devices", "merchant": "merchants"}
"""The rule file's (plural) name of each kind; block hits are reported as ``blocklist-<plural>``."""


def list_key(list_name: str, kind: str, value: str) -> str:
    """The message key of one entry: ``block:card:tok_…``."""
    return f"{list_name}:{kind}:{value}"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One entry on a list: who put it there, when and why."""

    list: ListName
    kind: EntityKind
    value: str
    reason: str
    who: str
    at: str

    @property
    def key(self) -> str:
        return list_key(self.list, self.kind, self.value)


@dataclass(frozen=True, slots=True)
class ListUpdate:
    """A checked update: ``entry`` is set (action add) or cleared (remove, or a tombstone: no message)."""

    key: str
    list: ListName
    kind: EntityKind
    value: str
    action: Literal["add", "remove"]
    message: Mapping[str, Any] | None

    def entry(self) -> ListEntry:
        assert self.message is not None, "a tombstone has no entry"
        return ListEntry(
            self.list,
            self.kind,
            self.value,
            str(self.message["reason"]),
            str(self.message["who"]),
            str(self.message["at"]),
        )


@dataclass(frozen=True, slots=True)
class ListHit:
    """Why a transaction is on a list: the decision, its reason and the ``rule_hits`` entry."""

    list: ListName
    kind: EntityKind
    reason: str
    rule_hit: str
    entry: ListEntry | None = None
    """The topic's entry; None for the rule file's lists."""


class EntityLists:
    """The entries published to the list-updates topic, answering "is this transaction listed?".

    Not thread-safe: one writer (the worker's event loop; the monitor wraps it in a lock).
    """

    def __init__(self) -> None:
        self._entries: dict[str, ListEntry] = {}
        # (list, kind) -> value -> entry, for the lookups on every transaction
        self._index: dict[tuple[str, str], dict[str, ListEntry]] = {
            (name, kind): {} for name in LIST_NAMES for kind in ENTITY_KINDS
        }
        self.version = 0
        """Counts the changes (a view can tell whether to redraw)."""

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ListEntry]:
        return iter(self._entries.values())

    def get(self, list_name: str, kind: str, value: str) -> ListEntry | None:
        return self._index.get((list_name, kind), {}).get(value)

    def counts(self) -> dict[str, int]:
        """Entries per list ("block", "allow")."""
        return {name: sum(len(self._index[(name, kind)]) for kind in ENTITY_KINDS) for name in LIST_NAMES}

    def apply(self, update: ListUpdate) -> bool:
        """Set or clear the entry ``update`` names; True when the lists changed."""
        bucket = self._index[(update.list, update.kind)]
        if update.action == "add":
            entry = update.entry()
            if self._entries.get(update.key) == entry:
                return False
            self._entries[update.key] = bucket[update.value] = entry
        else:
            if update.key not in self._entries:
                return False
            del self._entries[update.key]
            del bucket[update.value]
        self.version += 1
        return True

    def candidates(self, txns: Sequence[Mapping[str, Any]], rules: RuleSet | None = None) -> set[int] | None:
        """The positions in ``txns`` that ``match`` might find on a list, a field at a time: every
        other position's ``match`` is None (each list hit is a value of the transaction's card,
        device or merchant field found in a list). None when a field could not be looked up (an
        unhashable value): each transaction must then be matched alone."""
        containers: dict[str, list[Collection[Any]]] = {field: [] for field in TRANSACTION_FIELD.values()}
        if rules is not None:
            for kind, field in TRANSACTION_FIELD.items():
                containers[field].append(rules.blocked.get(RULE_FILE_KIND[kind], ()))
            containers["card_token"].append(rules.allowed_cards)
        if self._entries:
            for (_, kind), entries in self._index.items():
                containers[TRANSACTION_FIELD[kind]].append(entries.keys())
        found: set[int] = set()
        try:
            for field, listed in containers.items():
                listed = [container for container in listed if container]
                if not listed:
                    continue
                values = [txn.get(field) for txn in txns]
                for container in listed:
                    if not _disjoint(container, values):
                        found.update(i for i, value in enumerate(values) if value in container)
        except TypeError:
            return None
        return found

    def match(self, txn: Mapping[str, Any], rules: RuleSet | None = None) -> ListHit | None:
        """The block or allow list entry that decides ``txn``, rule file's lists included; None if none.

        Blocks win over allows; the rule file's block lists come first (their hits read as before).
        """
        if rules is not None:
            kind_plural = rules.blocked_entity(txn)
            if kind_plural:
                kind = next(k for k, p in RULE_FILE_KIND.items() if p == kind_plural)
                return ListHit(
                    "block", kind, f"On the block list of {kind_plural}", f"blocklist-{kind_plural}"
                )  # type: ignore[arg-type]
        if self._entries:
            for kind in ENTITY_KINDS:
                entry = self._index[("block", kind)].get(txn.get(TRANSACTION_FIELD[kind]))  # type: ignore[arg-type]
                if entry is not None:
                    reason = f"On the block list of {RULE_FILE_KIND[kind]}: {entry.reason} (by {entry.who})"
                    return ListHit("block", kind, reason, f"blocklist-{RULE_FILE_KIND[kind]}", entry)
        if rules is not None and txn.get("card_token") in rules.allowed_cards:
            return ListHit("allow", "card", "Card on the allow list", "allowlist-card")
        if self._entries:
            for kind in ENTITY_KINDS:
                entry = self._index[("allow", kind)].get(txn.get(TRANSACTION_FIELD[kind]))  # type: ignore[arg-type]
                if entry is not None:
                    reason = f"{kind.capitalize()} on the allow list: {entry.reason} (by {entry.who})"
                    return ListHit("allow", kind, reason, f"allowlist-{kind}", entry)
        return None


def _disjoint(container: Collection[Any], values: list[Any]) -> bool:
    """Whether no value is in ``container`` (a set or a dict's keys), in one call."""
    if isinstance(container, (frozenset, set, type({}.keys()))):
        return container.isdisjoint(values)
    return not any(value in container for value in values)
