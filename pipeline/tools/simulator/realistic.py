"""A realistic, hard card stream for the quality benchmark: pure, seeded, deterministic, no Kafka.

Customers live somewhere on a 100 x 100 map split into nine countries, each with their own amount
habits, frequency, preferred hours, a few cards and a few devices; they pay mostly at favourite
terminals near home (near a border, that is abroad), online at a few favourite web shops, now and
then on a trip. Traffic follows a daily and weekly rhythm. Fraud is at entity level, and its amounts
overlap with the legitimate ones (amount alone ranks fraud at an AUC of about 0.6):

* ``compromised_terminal`` (Malicious Behavior): a terminal compromised for two to six weeks; a share
  of its payments are fraud, at the customers' own, barely inflated, amounts; a few cards used
  there are compromised some days later (a common point of purchase).
* ``compromised_card`` (Unauthorized Transactions): a stolen card used for days beside its owner,
  with moderately inflated amounts: partly where the owner shops, partly at terminals in another
  town or country, partly online from a new device.
* ``card_testing`` (Malicious Behavior): a bot tries many cards with small amounts at one web shop
  from one device, then spends more on a few of them; some tested cards are used later.
* ``account_takeover`` (Identity Theft): contact details changed, then transfers and online
  purchases from a new device. Legitimate customers change contact details and devices too.
* ``device_farm`` (Identity Theft), the drift: from ``drift_start`` on, a ring takes over accounts
  without changing contact details and buys digital goods at the victims' usual amounts, from a few
  shared devices at a few shops: a pattern no earlier label has shown.

Every transaction has a label time: a fraud's chargeback comes days to weeks later, a legitimate
payment settles ``settle_days`` later. ``RealisticGenerator.events()`` yields the transactions in
event-time order; ``LabelledTransaction.row()`` is the transaction plus ``is_fraud`` and
``fraud_type``, as ``fraud backtest`` reads them.

The module is longer than 400 lines because it is one simulated world: the population, its habits,
the fraud scenarios and the clock share one random state and one event queue, and a reader follows a
scenario from start to finish in one place.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DAY = 86400.0
HOUR = 3600.0
MAP = 100.0
CELL = 10.0
COUNTRY_GRID = (("NL", "DE", "PL"), ("BE", "FR", "AT"), ("ES", "IT", "SI"))
FOREIGN = ("GB", "US", "RO", "BR", "TR", "CN", "IN", "MX")
CURRENCY = {
    "PL": "PLN",
    "GB": "GBP",
    "US": "USD",
    "RO": "RON",
    "BR": "BRL",
    "TR": "TRY",
    "CN": "CNY",
    "IN": "INR",
    "MX": "MXN",
}
# Merchant categories: (ISO 18245 code, weight, log-amount offset against the customer's habit).
PHYSICAL_CATEGORIES = (
    ("5411", 26, 0.0),  # grocery
    ("5812", 12, 0.1),  # restaurants
    ("5814", 12, -1.0),  # fast food
    ("5541", 9, 0.3),  # fuel
    ("5912", 7, -0.4),  # pharmacy
    ("5311", 6, 0.6),  # department store
    ("5651", 6, 0.7),  # clothing
    ("5732", 3, 1.3),  # electronics
    ("4121", 5, -0.6),  # taxi
    ("5999", 8, 0.0),  # misc retail
    ("7011", 2, 1.8),  # hotels
)
ATM_CATEGORY = "6011"
WEB_CATEGORIES = (
    ("5816", 10, -1.4),  # digital games
    ("5817", 10, -1.8),  # apps, software
    ("5818", 6, -0.6),  # digital goods
    ("5732", 8, 1.2),  # electronics
    ("5651", 12, 0.5),  # clothing
    ("5311", 10, 0.4),  # department store
    ("4511", 4, 2.0),  # airlines
    ("7011", 4, 1.6),  # hotels
    ("5399", 12, 0.1),  # general merchandise
    ("4829", 6, 1.0),  # money transfer
    ("5999", 8, 0.0),  # misc
)
DIGITAL_GOODS = ("5816", "5817", "5818")
TAKEOVER_TARGETS = ("4829", "5732", "5818", "5311")
WEEKDAY = (0.95, 0.97, 1.0, 1.02, 1.12, 1.15, 0.79)
TERMINAL, CARD, TESTING, TAKEOVER, FARM = (
    "compromised_terminal",
    "compromised_card",
    "card_testing",
    "account_takeover",
    "device_farm",
)
FRAUD_TYPE = {
    TERMINAL: "malicious_behavior",
    TESTING: "malicious_behavior",
    CARD: "unauthorized_transactions",
    TAKEOVER: "identity_theft",
    FARM: "identity_theft",
}
SCENARIOS = tuple(FRAUD_TYPE)


@dataclass(frozen=True)
class RealisticConfig:
    """Size, seed and fraud intensities. Episode rates are per day and 1,000 customers (terminal
    compromises per day and 1,000 terminals), so the fraud share stays put when the size changes."""

    customers: int = 5000
    terminals: int = 1000
    days: int = 84
    seed: int = 42
    start: float = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday, midnight UTC
    terminal_compromises: float = 0.35
    card_compromises: float = 0.5
    card_testing: float = 0.025
    account_takeovers: float = 0.2
    device_farm: float = 0.4
    drift_day: int | None = None
    """First day of the device-farm pattern; None: at 55 % of the period."""
    settle_days: float = 7.0

    @property
    def drift_start(self) -> int:
        return self.drift_day if self.drift_day is not None else int(self.days * 0.55)


@dataclass(frozen=True, slots=True)
class LabelledTransaction:
    """A transaction as upstream publishes it, with the ground truth and when it becomes known."""

    transaction: dict[str, Any]
    is_fraud: bool
    fraud_type: str | None
    scenario: str | None
    at: float
    label_at: float

    def row(self) -> dict[str, Any]:
        """The transaction plus ``is_fraud`` and ``fraud_type`` (what ``fraud backtest`` reads)."""
        return {**self.transaction, "is_fraud": self.is_fraud, "fraud_type": self.fraud_type}


@dataclass(slots=True)
class Terminal:
    terminal_id: str
    merchant_id: str
    category: str
    offset: float
    country: str
    x: float
    y: float
    popularity: float
    compromised: list[tuple[float, float, float]] = field(default_factory=list)  # (from, to, share)


@dataclass(slots=True)
class Customer:
    customer_id: str
    x: float
    y: float
    country: str
    cards: list[str]
    card_weights: list[float]  # cumulative, as every *_weights below
    frequency: float  # payments per day
    weekend: float
    hour: float
    hour_spread: float
    mu: float
    sigma: float
    digital: float
    atm: float
    devices: list[str]
    ip: str
    age_days: int
    local: list[int]  # favourite physical terminals
    local_weights: list[float]
    area: list[int]  # other terminals of the region
    atms: list[int]
    shops: list[int]  # favourite web shops
    shop_weights: list[float]
    contact_changes: list[float] = field(default_factory=list)  # sorted
    trip: tuple[float, list[int], list[float]] | None = None  # (until, terminals, weights)


Raw = tuple[float, int, int, str, int, float, str, str | None, str | None, bool | None, str | None]
"""(at, order, customer, card, terminal, amount, channel, device, ip, shipping matches, scenario)"""


def country_at(x: float, y: float) -> str:
    """The country of a point of the map."""
    return COUNTRY_GRID[min(int(y / MAP * 3), 2)][min(int(x / MAP * 3), 2)]


class RealisticGenerator:
    """The stream of ``config``: the same transactions in the same order for the same config."""

    def __init__(self, config: RealisticConfig | None = None) -> None:
        self.config = config or RealisticConfig()
        self.random = random.Random(self.config.seed)
        self._order = 0
        self._tag = f"{self.config.seed:x}"
        self.terminals: list[Terminal] = []
        self._physical: list[int] = []
        self._atms: list[int] = []
        self._web: list[int] = []
        self._grid: dict[tuple[int, int], list[int]] = {}
        self._build_terminals()
        self._web_weights = _cumulative([self.terminals[i].popularity for i in self._web])
        self._physical_weights = _cumulative([self.terminals[i].popularity for i in self._physical])
        self._domestic_shops: dict[str, tuple[list[int], list[float]]] = {}
        for country in {self.terminals[i].country for i in self._web}:
            shops = [i for i in self._web if self.terminals[i].country == country]
            self._domestic_shops[country] = (
                shops,
                _cumulative([self.terminals[i].popularity for i in shops]),
            )
        self.customers = [self._customer(i) for i in range(self.config.customers)]
        self._pending: dict[int, list[Raw]] = {}
        self._farm_devices: list[str] = []
        digital = [i for i in self._web if self.terminals[i].category in DIGITAL_GOODS] or self._web
        self._farm_shops = self.random.sample(digital, k=min(3, len(digital)))
        self._takeover_shops = [
            i for i in self._web if self.terminals[i].category in TAKEOVER_TARGETS
        ] or self._web

    # --- population ----------------------------------------------------------------------------
    def _build_terminals(self) -> None:
        r = self.random
        merchant = 0
        codes, weights = [c for c, _, _ in PHYSICAL_CATEGORIES], [w for _, w, _ in PHYSICAL_CATEGORIES]
        offsets = {c: o for c, _, o in PHYSICAL_CATEGORIES}
        while len(self._physical) < self.config.terminals:
            x, y = r.uniform(0, MAP), r.uniform(0, MAP)
            atm = r.random() < 0.06
            category = ATM_CATEGORY if atm else r.choices(codes, weights)[0]
            popularity = r.paretovariate(2.0)
            for k in range(1 if atm else r.choice((1, 1, 1, 2, 2, 3))):
                tx, ty = _clip(x + r.gauss(0, 1.5)), _clip(y + r.gauss(0, 1.5))
                index = len(self.terminals)
                self.terminals.append(
                    Terminal(
                        f"t-{merchant:05d}-{k}",
                        f"m-{merchant:05d}",
                        category,
                        offsets.get(category, 0.0),
                        country_at(tx, ty),
                        tx,
                        ty,
                        popularity,
                    )
                )
                (self._atms if atm else self._physical).append(index)
                self._grid.setdefault((int(tx // CELL), int(ty // CELL)), []).append(index)
            merchant += 1
        codes, weights = [c for c, _, _ in WEB_CATEGORIES], [w for _, w, _ in WEB_CATEGORIES]
        offsets = {c: o for c, _, o in WEB_CATEGORIES}
        for _ in range(max(24, self.config.terminals // 6)):
            category = r.choices(codes, weights)[0]
            if r.random() < 0.8:
                country = country_at(r.uniform(0, MAP), r.uniform(0, MAP))
            else:
                country = r.choice(FOREIGN)
            self._web.append(len(self.terminals))
            self.terminals.append(
                Terminal(
                    f"t-{merchant:05d}-web",
                    f"m-{merchant:05d}",
                    category,
                    offsets[category],
                    country,
                    -1.0,
                    -1.0,
                    r.paretovariate(1.5),
                )
            )
            merchant += 1

    def _near(self, x: float, y: float, radius: float, atm: bool = False) -> list[tuple[float, int]]:
        """(distance, terminal) of the physical terminals (or ATMs) within ``radius`` of (x, y),
        nearest first; the three nearest when fewer are that close."""
        wanted = ATM_CATEGORY if atm else None
        found: list[tuple[float, int]] = []
        reach = radius
        while True:
            low_x, high_x = int((x - reach) // CELL), int((x + reach) // CELL)
            low_y, high_y = int((y - reach) // CELL), int((y + reach) // CELL)
            found = []
            for cx in range(low_x, high_x + 1):
                for cy in range(low_y, high_y + 1):
                    for i in self._grid.get((cx, cy), ()):
                        terminal = self.terminals[i]
                        if (terminal.category == ATM_CATEGORY) != (wanted is not None):
                            continue
                        distance = math.hypot(terminal.x - x, terminal.y - y)
                        if distance <= reach:
                            found.append((distance, i))
            if len(found) >= 3 or reach > 2 * MAP:
                break
            reach *= 2
        found.sort()
        return found if reach == radius else found[:3]

    def _customer(self, index: int) -> Customer:
        r = self.random
        x, y = r.uniform(0, MAP), r.uniform(0, MAP)
        near = self._near(x, y, 12.0)
        chosen = r.sample(near, k=min(len(near), r.randint(5, 14)))
        favourites = [i for _, i in chosen]
        weights = [self.terminals[i].popularity * r.expovariate(1.0) / (1 + d / 4) for d, i in chosen]
        country = country_at(x, y)
        domestic = self._domestic_shops.get(country)
        shops = [
            r.choices(domestic[0], cum_weights=domestic[1])[0]
            if domestic and r.random() < 0.75
            else r.choices(self._web, cum_weights=self._web_weights)[0]
            for _ in range(r.randint(3, 7))
        ]
        cards = [self._token() for _ in range(1 + (r.random() < 0.35) + (r.random() < 0.08))]
        return Customer(
            customer_id=f"c-{index:06d}",
            x=x,
            y=y,
            country=country,
            cards=cards,
            card_weights=_cumulative([1.0] + [r.uniform(0.1, 0.6) for _ in cards[1:]]),
            frequency=min(max(r.lognormvariate(0.0, 0.6), 0.1), 6.0),
            weekend=r.uniform(0.6, 1.4),
            hour=r.choice((9.5, 12.5, 13.5, 16.0, 18.5, 20.0)) + r.gauss(0, 1.0),
            hour_spread=r.uniform(1.5, 4.0),
            mu=r.gauss(math.log(32), 0.45),
            sigma=r.uniform(0.5, 0.9),
            digital=min(r.betavariate(2, 5), 0.8),
            atm=r.uniform(0.0, 0.08),
            devices=[self._device() for _ in range(1 + (r.random() < 0.5) + (r.random() < 0.15))],
            ip=self._ip(),
            age_days=int(r.expovariate(1 / 1500)) + 20,
            local=favourites,
            local_weights=_cumulative(weights),
            area=[i for _, i in self._near(x, y, 25.0)],
            atms=[i for _, i in self._near(x, y, 15.0, atm=True)[:3]],
            shops=shops,
            shop_weights=_cumulative([self.terminals[i].popularity for i in shops]),
        )

    def _token(self) -> str:
        # The letters cut digit runs short: a long run of digits could pass the Luhn check, which
        # the pipeline refuses as a card number.
        bits = f"{self.random.getrandbits(64):016x}"
        return f"tok_{self._tag}x{bits[:8]}x{bits[8:]}"

    def _device(self) -> str:
        return f"dev-{self.random.getrandbits(48):012x}"

    def _ip(self) -> str:
        r = self.random
        return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    # --- the stream ----------------------------------------------------------------------------
    def events(self) -> Iterator[LabelledTransaction]:
        """Every transaction of the period, in event-time order."""
        for day in range(self.config.days):
            raws = self._day(day)
            raws.sort()
            for raw in raws:
                yield self._finish(raw)

    def _day(self, day: int) -> list[Raw]:
        """The day's raw transactions: first the fraud episodes starting today, then every
        customer's own payments (on compromised terminals, some are fraud)."""
        cfg, r = self.config, self.random
        start = cfg.start + day * DAY
        scale = cfg.customers / 1000
        for _ in range(_poisson(r, cfg.terminal_compromises * cfg.terminals / 1000)):
            self._compromise_terminal(start)
        for _ in range(_poisson(r, cfg.card_compromises * scale)):
            customer = r.randrange(len(self.customers))
            self._compromise_card(customer, self._card(customer), start + r.uniform(0, DAY))
        for _ in range(_poisson(r, cfg.card_testing * scale)):
            self._card_testing(start + r.uniform(0, DAY))
        for _ in range(_poisson(r, cfg.account_takeovers * scale)):
            self._account_takeover(start + r.uniform(0, DAY))
        if day >= cfg.drift_start:  # the new pattern ramps up over a week
            ramp = min(1.0, (day - cfg.drift_start + 1) / 7)
            for _ in range(_poisson(r, cfg.device_farm * scale * ramp)):
                self._device_farm(start + r.uniform(0, DAY))
        raws = self._pending.pop(day, [])
        weekday = datetime.fromtimestamp(start, UTC).weekday()
        for index, customer in enumerate(self.customers):
            self._habits(customer, start)
            rate = customer.frequency * WEEKDAY[weekday] * (customer.weekend if weekday >= 5 else 1.0)
            for _ in range(_poisson(r, rate)):
                raws.append(self._legitimate(index, customer, start + self._hour(customer) * HOUR))
        return raws

    def _habits(self, customer: Customer, start: float) -> None:
        """Now and then a customer changes contact details, gets a new device or takes a trip."""
        r = self.random
        if r.random() < 1 / 400:
            insort(customer.contact_changes, start + r.uniform(0, DAY))
        if r.random() < 1 / 150:
            customer.devices[r.randrange(len(customer.devices))] = self._device()
        if customer.trip is not None and customer.trip[0] <= start:
            customer.trip = None
        if customer.trip is None and r.random() < 1 / 150:
            near = self._near(r.uniform(0, MAP), r.uniform(0, MAP), 8.0)
            weights = _cumulative([self.terminals[i].popularity for _, i in near])
            customer.trip = (start + r.randint(2, 8) * DAY, [i for _, i in near], weights)

    def _hour(self, customer: Customer) -> float:
        r = self.random
        if r.random() < 0.04:
            return r.uniform(0, 24)
        return (customer.hour + r.gauss(0, customer.hour_spread)) % 24

    def _card(self, customer: int) -> str:
        c = self.customers[customer]
        return self.random.choices(c.cards, cum_weights=c.card_weights)[0]

    def _raw(
        self,
        at: float,
        customer: int,
        card: str,
        where: int,
        amount: float,
        channel: str,
        device: str | None = None,
        ip: str | None = None,
        shipping: bool | None = None,
        scenario: str | None = None,
    ) -> Raw:
        self._order += 1
        return (at, self._order, customer, card, where, amount, channel, device, ip, shipping, scenario)

    def _schedule(self, raw: Raw) -> None:
        day = int((raw[0] - self.config.start) // DAY)
        if 0 <= day < self.config.days:
            self._pending.setdefault(day, []).append(raw)

    def _amount(self, customer: Customer, terminal: Terminal, lift: float = 0.0) -> float:
        return self.random.lognormvariate(customer.mu + terminal.offset + lift, customer.sigma)

    def _legitimate(self, index: int, customer: Customer, at: float) -> Raw:
        r = self.random
        card = r.choices(customer.cards, cum_weights=customer.card_weights)[0]
        if r.random() < customer.digital:
            if r.random() < 0.9:
                where = r.choices(customer.shops, cum_weights=customer.shop_weights)[0]
            else:
                where = r.choices(self._web, cum_weights=self._web_weights)[0]
            channel = "mobile_app" if r.random() < 0.4 else "ecommerce"
            device = r.choice(customer.devices)
            ip = customer.ip if r.random() < 0.8 else self._ip()
            amount = self._amount(customer, self.terminals[where])
            return self._raw(at, index, card, where, amount, channel, device, ip, r.random() < 0.93)
        if customer.atms and r.random() < customer.atm:
            amount = float(r.choice((20, 50, 50, 100, 100, 200, 300)))
            return self._raw(at, index, card, r.choice(customer.atms), amount, "atm")
        if customer.trip is not None:
            where = r.choices(customer.trip[1], cum_weights=customer.trip[2])[0]
        elif r.random() < 0.88 or not customer.area:
            where = r.choices(customer.local, cum_weights=customer.local_weights)[0]
        else:  # elsewhere in the region
            where = r.choice(customer.area)
        terminal = self.terminals[where]
        amount = self._amount(customer, terminal)
        scenario = None
        for begin, end, share in terminal.compromised:
            if begin <= at < end and r.random() < share:
                scenario = TERMINAL
                amount *= r.lognormvariate(0.45, 0.35)
                if r.random() < 0.06:  # the card was skimmed: it is used elsewhere days later
                    self._compromise_card(index, card, at + r.uniform(2, 10) * DAY)
                break
        channel = "contactless" if amount < 50 and r.random() < 0.75 else "card_present"
        return self._raw(at, index, card, where, amount, channel, scenario=scenario)

    # --- fraud episodes ------------------------------------------------------------------------
    def _compromise_terminal(self, start: float) -> None:
        r = self.random
        where = r.choices(self._physical, cum_weights=self._physical_weights)[0]
        until = start + r.uniform(2, 6) * 7 * DAY
        self.terminals[where].compromised.append((start, until, r.uniform(0.2, 0.6)))

    def _compromise_card(self, customer: int, card: str, at: float) -> None:
        r = self.random
        owner = self.customers[customer]
        until = at + r.uniform(1, 10) * DAY
        lift = r.uniform(0.4, 1.2)
        device = self._device()
        elsewhere = [i for _, i in self._near(r.uniform(0, MAP), r.uniform(0, MAP), 10.0)]
        when = at
        for _ in range(1 + _geometric(r, 0.22)):
            where, web = self._stolen_card_place(owner, elsewhere)
            amount = self._amount(owner, self.terminals[where], lift)
            if web:
                channel, ip, shipping = r.choice(("ecommerce", "mobile_app")), self._ip(), r.random() < 0.6
                self._schedule(
                    self._raw(when, customer, card, where, amount, channel, device, ip, shipping, CARD)
                )
            else:
                channel = "contactless" if amount < 50 and r.random() < 0.6 else "card_present"
                self._schedule(self._raw(when, customer, card, where, amount, channel, scenario=CARD))
            if r.random() < 0.5:  # the next one within hours, or on a later day
                when += r.expovariate(1 / (2 * HOUR))
            else:
                hour = r.uniform(0, 24) if r.random() < 0.4 else self._hour(owner)
                when = (math.floor(when / DAY) + 1 + _geometric(r, 0.5)) * DAY + hour * HOUR
            if when > until:
                break

    def _stolen_card_place(self, owner: Customer, elsewhere: list[int]) -> tuple[int, bool]:
        """(terminal, is a web shop) of a stolen card's next use."""
        r = self.random
        draw = r.random()
        if draw < 0.25:  # where the owner shops
            return r.choices(owner.local, cum_weights=owner.local_weights)[0], False
        if draw < 0.55:  # a clone of the card, in another town or country
            return r.choice(elsewhere), False
        return r.choices(self._web, cum_weights=self._web_weights)[0], True

    def _card_testing(self, at: float) -> None:
        r = self.random
        shop = r.choice(self._web)
        device, ip = self._device(), self._ip()
        when = at
        tested: list[tuple[int, str]] = []
        for _ in range(r.randint(8, 30)):
            customer = r.randrange(len(self.customers))
            card = self._card(customer)
            amount = round(r.choice((0.5, 1.0, 1.0, 1.99, 2.5, 3.0, 4.99)) * r.uniform(0.8, 1.2), 2)
            self._schedule(
                self._raw(when, customer, card, shop, amount, "ecommerce", device, ip, True, TESTING)
            )
            tested.append((customer, card))
            when += r.expovariate(1 / 45)
        for customer, card in r.sample(tested, k=r.randint(1, 3)):  # the cards that work: cash out
            when += r.uniform(5, 120) * 60
            amount, shipping = r.lognormvariate(math.log(90), 0.7), r.random() < 0.5
            self._schedule(
                self._raw(when, customer, card, shop, amount, "ecommerce", device, ip, shipping, TESTING)
            )
        for customer, card in tested:
            if r.random() < 0.1:
                self._compromise_card(customer, card, at + r.uniform(1, 14) * DAY)

    def _account_takeover(self, at: float) -> None:
        r = self.random
        index = r.randrange(len(self.customers))
        victim = self.customers[index]
        insort(victim.contact_changes, at)
        device, ip = self._device(), self._ip()
        when = at + r.uniform(0.5, 48) * HOUR
        lift = r.uniform(0.3, 1.1)
        for _ in range(r.randint(2, 6)):
            where = r.choice(self._takeover_shops)
            channel = "mobile_app" if self.terminals[where].category == "4829" else "ecommerce"
            amount = self._amount(victim, self.terminals[where], lift)
            card = r.choices(victim.cards, cum_weights=victim.card_weights)[0]
            shipping = r.random() < 0.4
            self._schedule(
                self._raw(when, index, card, where, amount, channel, device, ip, shipping, TAKEOVER)
            )
            when += r.expovariate(1 / (8 * HOUR))

    def _device_farm(self, at: float) -> None:
        r = self.random
        if not self._farm_devices or r.random() < 0.08:  # the ring renews a device now and then
            self._farm_devices.append(self._device())
            del self._farm_devices[:-4]
        index = r.randrange(len(self.customers))
        victim = self.customers[index]
        device, ip = r.choice(self._farm_devices), self._ip()
        when = at
        for _ in range(r.randint(1, 4)):
            where = r.choice(self._farm_shops)
            amount = self._amount(victim, self.terminals[where], r.uniform(0.3, 1.2))
            card = r.choices(victim.cards, cum_weights=victim.card_weights)[0]
            self._schedule(self._raw(when, index, card, where, amount, "mobile_app", device, ip, None, FARM))
            when += r.expovariate(1 / HOUR)

    # --- output --------------------------------------------------------------------------------
    def _finish(self, raw: Raw) -> LabelledTransaction:
        at, order, index, card, where, amount, channel, device, ip, shipping, scenario = raw
        customer, terminal = self.customers[index], self.terminals[where]
        changes = customer.contact_changes
        contact_hours = None
        position = bisect_right(changes, at)
        if position and at - changes[position - 1] < 90 * DAY:
            contact_hours = round((at - changes[position - 1]) / HOUR, 2)
        digital = channel in ("ecommerce", "mobile_app")
        transaction = {
            "schema_version": 1,
            "transaction_id": f"tx-{self._tag}-{order:09d}",
            "event_time": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "card_token": card,
            "customer_id": customer.customer_id,
            "merchant_id": terminal.merchant_id,
            "terminal_id": terminal.terminal_id,
            "merchant_category": terminal.category,
            "amount": round(min(max(amount, 0.5), 20_000.0), 2),
            "currency": CURRENCY.get(terminal.country, "EUR"),
            "channel": channel,
            "country": terminal.country,
            "card_country": customer.country,
            "device_id": device if digital else None,
            "ip_address": ip if digital else None,
            "account_age_days": customer.age_days + int((at - self.config.start) // DAY),
            "hours_since_contact_change": contact_hours,
            "shipping_matches_billing": shipping if channel == "ecommerce" else None,
        }
        if scenario is None:
            return LabelledTransaction(transaction, False, None, None, at, at + self.config.settle_days * DAY)
        delay = min(max(self.random.lognormvariate(math.log(9), 0.6), 1.0), 60.0)  # the chargeback
        return LabelledTransaction(transaction, True, FRAUD_TYPE[scenario], scenario, at, at + delay * DAY)


def generate(config: RealisticConfig | None = None) -> list[LabelledTransaction]:
    """The whole stream of ``config``, in event-time order."""
    return list(RealisticGenerator(config).events())


def _clip(value: float) -> float:
    return min(max(value, 0.0), MAP - 1e-6)


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _poisson(r: random.Random, mean: float) -> int:
    """A Poisson draw: Knuth's method for the small means used here, a normal one beyond 30."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(r.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, r.random()
    while product > limit:
        count += 1
        product *= r.random()
    return count


def _geometric(r: random.Random, p: float) -> int:
    """Failures before the first success of probability ``p``."""
    return int(math.log(1.0 - r.random()) / math.log(1.0 - p))
