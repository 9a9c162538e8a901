"""Realistic card traffic with three injected fraud types: pure, seedable, no Kafka.

Legitimate customers shop at a few favourite merchants in their home country, with their own
amount habits and devices, following a daily and weekly rhythm. Fraud comes in episodes, each
with its own signature:

* Unauthorized Transactions: a stolen card used in a burst at unfamiliar merchants abroad,
  with amounts well above the card's usual.
* Identity Theft: an account takeover: contact details changed, then high-value digital
  purchases from a new device and IP, often shipped elsewhere.
* Malicious Behavior: a bot testing many cards with small amounts at one web terminal.

``TrafficGenerator.events()`` yields transactions in event-time order with their ground truth.

The module is longer than 400 lines because it is one simulated world: the population, its
habits, the fraud episodes and the clock share one random state and one event queue, and a
reader follows an episode from start to finish in one place.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.config import Settings

COUNTRIES = ("DE", "FR", "NL", "BE", "ES", "IT", "AT", "PL", "SE", "GB", "IE", "PT", "DK", "CZ")
FRAUD_COUNTRIES = ("RO", "BR", "NG", "US", "RU", "CN", "ID", "VN", "UA", "MX")
CURRENCY = {
    "GB": "GBP",
    "SE": "SEK",
    "PL": "PLN",
    "DK": "DKK",
    "CZ": "CZK",
    "US": "USD",
    "BR": "BRL",
    "RO": "RON",
    "MX": "MXN",
    "CN": "CNY",
}
MCC = ("5411", "5812", "5541", "5912", "5311", "5999", "4121", "5732", "5651", "7011", "4511", "5814")
HOURLY_PROFILE = (
    0.15,
    0.08,
    0.05,
    0.04,
    0.05,
    0.12,
    0.35,
    0.65,
    0.85,
    0.95,
    1.0,
    1.05,
    1.15,
    1.05,
    0.95,
    0.95,
    1.0,
    1.1,
    1.2,
    1.15,
    0.95,
    0.75,
    0.5,
    0.3,
)
WEEKDAY_PROFILE = (0.95, 0.95, 1.0, 1.0, 1.1, 1.2, 0.8)
PEAK = max(HOURLY_PROFILE) * max(WEEKDAY_PROFILE)
MEAN_ACTIVITY = sum(HOURLY_PROFILE) / 24 * sum(WEEKDAY_PROFILE) / 7


@dataclass(frozen=True)
class FraudRates:
    """Fraud episodes started per legitimate transaction, for each type."""

    unauthorized: float = 0.004
    identity_theft: float = 0.003
    malicious: float = 0.002


@dataclass(frozen=True)
class SimulatedTransaction:
    """One transaction as upstream publishes it, plus the ground truth only the simulator knows."""

    transaction: dict[str, Any]
    is_fraud: bool
    fraud_type: str | None
    at: float


@dataclass
class Merchant:
    merchant_id: str
    terminals: tuple[str, ...]
    web_terminal: str
    country: str
    mcc: str
    popularity: float


@dataclass
class Customer:
    customer_id: str
    cards: tuple[str, ...]
    country: str
    favourites: tuple[int, ...]
    amount_mu: float
    amount_sigma: float
    devices: tuple[str, ...]
    ip: str
    account_age_days: int
    digital_share: float
    contact_changed_at: float | None = None


@dataclass(order=True)
class _Scheduled:
    at: float
    seq: int
    item: SimulatedTransaction = field(compare=False)


class TrafficGenerator:
    """Generates transactions at ``rate`` per second on average, starting at ``start`` (epoch s)."""

    def __init__(
        self,
        *,
        seed: int = 7,
        customers: int = 5000,
        merchants: int = 600,
        rate: float = 40.0,
        fraud: FraudRates | None = None,
        start: float | None = None,
        rhythm: bool = True,
        run_id: str | None = None,
    ) -> None:
        self.random = random.Random(seed)
        self.rate = rate
        self.fraud = fraud or FraudRates()
        self.now = start if start is not None else datetime.now(UTC).timestamp()
        self.rhythm = rhythm
        self._seq = 0
        self._scheduled: list[_Scheduled] = []
        self._token_prefix = f"{seed:x}"
        self._id_prefix = run_id or f"{seed:x}"
        self.merchants = [self._merchant(i) for i in range(merchants)]
        self._merchant_weights = [m.popularity for m in self.merchants]
        self.customers = [self._customer(i) for i in range(customers)]
        self._bots = [f"dev-bot{seed:x}{i:03d}" for i in range(20)]

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TrafficGenerator:
        """A generator configured by the FRAUD_SIMULATOR_* settings; keyword arguments override."""
        options: dict[str, Any] = {
            "seed": settings.simulator_seed,
            "customers": settings.simulator_customers,
            "merchants": settings.simulator_merchants,
            "rate": settings.simulator_rate,
            "fraud": FraudRates(
                settings.simulator_unauthorized_rate,
                settings.simulator_identity_theft_rate,
                settings.simulator_malicious_rate,
            ),
            "rhythm": settings.simulator_rhythm,
        }
        return cls(**{**options, **overrides})

    # --- population ------------------------------------------------------------------------------
    def _merchant(self, index: int) -> Merchant:
        r = self.random
        merchant_id = f"m-{index:05d}"
        terminals = tuple(f"t-{index:05d}-{k}" for k in range(1 + int(r.random() * 3)))
        return Merchant(
            merchant_id,
            terminals,
            f"t-{index:05d}-web",
            r.choice(COUNTRIES),
            r.choice(MCC),
            r.paretovariate(1.3),
        )

    def _customer(self, index: int) -> Customer:
        r = self.random
        country = r.choice(COUNTRIES)
        local = [i for i, m in enumerate(self.merchants) if m.country == country] or list(
            range(len(self.merchants))
        )
        favourites = tuple(r.choices(local, weights=[self.merchants[i].popularity for i in local], k=8))
        cards = tuple(self._token() for _ in range(1 + (r.random() < 0.3)))
        devices = tuple(f"dev-{r.getrandbits(40):010x}" for _ in range(1 + (r.random() < 0.4)))
        return Customer(
            customer_id=f"cust-{index:06d}",
            cards=cards,
            country=country,
            favourites=favourites,
            amount_mu=r.gauss(3.3, 0.5),
            amount_sigma=r.uniform(0.4, 0.8),
            devices=devices,
            ip=self._ip(),
            account_age_days=int(r.expovariate(1 / 900)) + 30,
            digital_share=r.uniform(0.1, 0.6),
        )

    def _token(self) -> str:
        # The letters cut the digit runs short: 16 random hex digits in a row can spell 13 digits
        # that pass the Luhn check, which the pipeline refuses as a card number.
        bits = f"{self.random.getrandbits(64):016x}"
        return f"tok_{self._token_prefix}x{bits[:8]}x{bits[8:]}"

    def _ip(self) -> str:
        r = self.random
        return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    # --- the stream ------------------------------------------------------------------------------
    def events(self, count: int | None = None, until: float | None = None) -> Iterator[SimulatedTransaction]:
        """Transactions in event-time order: ``count`` of them, or up to time ``until``, or forever."""
        produced = 0
        while count is None or produced < count:
            # Candidates arrive at the peak rate and are thinned by the hour's activity, so the
            # long-run average is ``rate`` per second.
            gap = self.random.expovariate(self.rate * (PEAK / MEAN_ACTIVITY if self.rhythm else 1.0))
            next_legit = self.now + gap
            if self._scheduled and self._scheduled[0].at <= next_legit:
                item = heapq.heappop(self._scheduled).item
                self.now = max(self.now, item.at)
            else:
                self.now = next_legit
                if self.rhythm and self.random.random() > self._activity(self.now) / PEAK:
                    continue
                item = self._legitimate(self.now)
                self._maybe_start_fraud(self.now)
            if until is not None and item.at > until:
                heapq.heappush(self._scheduled, _Scheduled(item.at, self._next_seq(), item))
                return
            produced += 1
            yield item

    def _activity(self, at: float) -> float:
        moment = datetime.fromtimestamp(at, UTC)
        return HOURLY_PROFILE[moment.hour] * WEEKDAY_PROFILE[moment.weekday()]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _schedule(self, item: SimulatedTransaction) -> None:
        heapq.heappush(self._scheduled, _Scheduled(item.at, self._next_seq(), item))

    def _transaction(
        self,
        at: float,
        customer: Customer,
        card: str,
        merchant: Merchant,
        *,
        amount: float,
        channel: str,
        country: str,
        device: str | None,
        ip: str | None,
        shipping_matches: bool | None = None,
    ) -> dict[str, Any]:
        digital = channel in ("ecommerce", "mobile_app")
        contact_hours = None
        if customer.contact_changed_at is not None and at - customer.contact_changed_at < 90 * 86400:
            contact_hours = round(max(at - customer.contact_changed_at, 0.0) / 3600, 2)
        return {
            "schema_version": 1,
            "transaction_id": f"tx-{self._id_prefix}-{self._next_seq():010d}",
            "event_time": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "card_token": card,
            "customer_id": customer.customer_id,
            "merchant_id": merchant.merchant_id,
            "terminal_id": merchant.web_terminal if digital else self.random.choice(merchant.terminals),
            "merchant_category": merchant.mcc,
            "amount": round(min(max(amount, 0.5), 50_000.0), 2),
            "currency": CURRENCY.get(country, "EUR"),
            "channel": channel,
            "country": country,
            "card_country": customer.country,
            "device_id": device if digital else None,
            "ip_address": ip if digital else None,
            "account_age_days": customer.account_age_days,
            "hours_since_contact_change": contact_hours,
            "shipping_matches_billing": (shipping_matches if shipping_matches is not None else True)
            if digital
            else None,
        }

    def _legitimate(self, at: float) -> SimulatedTransaction:
        r = self.random
        customer = r.choice(self.customers)
        card = r.choice(customer.cards)
        if r.random() < 0.9:
            merchant = self.merchants[r.choice(customer.favourites)]
        else:
            merchant = r.choices(self.merchants, weights=self._merchant_weights)[0]
        digital = r.random() < customer.digital_share
        channel = (
            r.choice(("ecommerce", "mobile_app"))
            if digital
            else r.choice(("card_present", "contactless", "contactless", "atm"))
        )
        amount = r.lognormvariate(customer.amount_mu, customer.amount_sigma)
        if channel == "atm":
            amount = float(r.choice((20, 50, 100, 200)))
        country = customer.country if (digital or r.random() < 0.97) else merchant.country
        if r.random() < 0.0002:  # a legitimate change of contact details now and then
            customer.contact_changed_at = at
        txn = self._transaction(
            at,
            customer,
            card,
            merchant,
            amount=amount,
            channel=channel,
            country=country,
            device=r.choice(customer.devices),
            ip=customer.ip,
        )
        return SimulatedTransaction(txn, False, None, at)

    # --- fraud episodes ------------------------------------------------------------------------
    def _maybe_start_fraud(self, at: float) -> None:
        r = self.random.random()
        if r < self.fraud.unauthorized:
            self._stolen_card(at)
        elif r < self.fraud.unauthorized + self.fraud.identity_theft:
            self._account_takeover(at)
        elif r < self.fraud.unauthorized + self.fraud.identity_theft + self.fraud.malicious:
            self._card_testing(at)

    def _stolen_card(self, at: float) -> None:
        r = self.random
        customer = r.choice(self.customers)
        card = r.choice(customer.cards)
        country = r.choice(FRAUD_COUNTRIES)
        when = at + r.uniform(1, 30)
        for _ in range(r.randint(3, 8)):
            merchant = r.choices(self.merchants, weights=self._merchant_weights)[0]
            channel = r.choice(("card_present", "contactless", "ecommerce", "atm"))
            amount = r.lognormvariate(customer.amount_mu + 1.6, 0.6)
            txn = self._transaction(
                when,
                customer,
                card,
                merchant,
                amount=amount,
                channel=channel,
                country=country,
                device=f"dev-{r.getrandbits(40):010x}",
                ip=self._ip(),
            )
            self._schedule(SimulatedTransaction(txn, True, "unauthorized_transactions", when))
            when += r.uniform(10, 90)

    def _account_takeover(self, at: float) -> None:
        r = self.random
        customer = r.choice(self.customers)
        changed_at = at - r.uniform(0.5, 48) * 3600
        device = f"dev-{r.getrandbits(40):010x}"
        ip = self._ip()
        when = at + r.uniform(1, 30)
        customer.contact_changed_at = changed_at
        for _ in range(r.randint(2, 4)):
            merchant = r.choices(self.merchants, weights=self._merchant_weights)[0]
            amount = r.lognormvariate(customer.amount_mu + 1.8, 0.5)
            txn = self._transaction(
                when,
                customer,
                r.choice(customer.cards),
                merchant,
                amount=amount,
                channel=r.choice(("ecommerce", "mobile_app")),
                country=customer.country,
                device=device,
                ip=ip,
                shipping_matches=r.random() < 0.3,
            )
            self._schedule(SimulatedTransaction(txn, True, "identity_theft", when))
            when += r.uniform(60, 900)

    def _card_testing(self, at: float) -> None:
        r = self.random
        merchant = r.choice(self.merchants)
        bot = r.choice(self._bots)
        ip = self._ip()
        when = at + r.uniform(1, 10)
        for _ in range(r.randint(12, 30)):
            customer = r.choice(self.customers)
            txn = self._transaction(
                when,
                customer,
                r.choice(customer.cards),
                merchant,
                amount=r.choice((0.5, 1.0, 1.0, 1.5, 2.0)),
                channel="ecommerce",
                country=merchant.country,
                device=bot,
                ip=ip,
            )
            self._schedule(SimulatedTransaction(txn, True, "malicious_behavior", when))
            when += r.uniform(1, 8)


def label_for(item: SimulatedTransaction, labelled_at: float) -> dict[str, Any]:
    """The ground-truth label message for a simulated transaction."""
    return {
        "schema_version": 1,
        "transaction_id": item.transaction["transaction_id"],
        "card_token": item.transaction["card_token"],
        "is_fraud": item.is_fraud,
        "fraud_type": item.fraud_type,
        "source": "chargeback" if item.is_fraud else "settlement",
        "analyst": None,
        "comment": None,
        "labelled_at": datetime.fromtimestamp(labelled_at, UTC).isoformat(timespec="milliseconds"),
    }
