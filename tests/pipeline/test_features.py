"""Card, terminal, merchant, device and customer state rows, and the features computed from them
(through ``OneEntity``: the pipeline's batch code on batches of one)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.features import (
    CHANNELS,
    ENTITY_STAGES,
    FEATURE_NAMES,
    event_seconds,
    transaction_feature_matrix,
    transaction_features,
)
from pipeline.detection.states import (
    CARD,
    DAY,
    HOUR,
    MINUTE,
    CardColumns,
    CustomerColumns,
    DeviceColumns,
    MerchantColumns,
    TerminalColumns,
)
from pipeline.worker.topics import STAGES, owner_key, routing_key
from tests.pipeline.factories import PROPERTY, T0, OneEntity, make_digital_txn, make_txn


def new_card() -> OneEntity:
    return OneEntity(CARD)


def new_terminal() -> OneEntity:
    return OneEntity(TerminalColumns())


def new_merchant() -> OneEntity:
    return OneEntity(MerchantColumns())


def new_device() -> OneEntity:
    return OneEntity(DeviceColumns())


def new_customer() -> OneEntity:
    return OneEntity(CustomerColumns())


CARD_FEATURES = {
    "card_history_count",
    "card_count_1h",
    "card_count_24h",
    "card_amount_24h",
    "card_count_7d",
    "card_count_30d",
    "card_amount_30d",
    "card_amount_7d",
    "card_mean_amount_24h",
    "card_mean_amount_7d",
    "card_mean_amount_30d",
    "amount_zscore",
    "amount_to_card_mean",
    "log_seconds_since_prev",
    "is_new_country",
    "is_new_merchant",
    "is_new_device",
}


def observe(state: OneEntity, txn: dict[str, Any], at: float | None = None) -> dict[str, float]:
    """Features before the transaction, then the update (what the pipeline does)."""
    return state.observe(txn, at)


# --- card ------------------------------------------------------------------------------------------
def test_first_transaction_describes_an_empty_history() -> None:
    card = new_card()
    features = observe(card, make_txn(T0, amount=55.0))
    assert set(features) == CARD_FEATURES
    assert features["card_history_count"] == 0
    for name in (
        "card_count_1h",
        "card_count_24h",
        "card_amount_24h",
        "card_count_7d",
        "card_count_30d",
        "card_amount_30d",
    ):
        assert features[name] == 0, name
    assert features["is_new_merchant"] == 0
    assert features["is_new_country"] == 0
    assert features["is_new_device"] == 0  # card present: no device
    assert features["amount_zscore"] == 0
    assert features["amount_to_card_mean"] == 1
    assert features["log_seconds_since_prev"] == pytest.approx(math.log1p(30 * DAY))


def test_features_do_not_include_the_transaction_itself() -> None:
    card = new_card()
    txn = make_txn(T0, amount=10.0)
    before = card.features(txn, T0)
    card.update(txn, T0)
    after = card.features(txn, T0)
    assert before["card_count_1h"] == 0
    assert after["card_count_1h"] == 1
    assert after["card_amount_24h"] == 10.0


def test_counts_and_sums_in_1h_24h_7d_30d() -> None:
    card = new_card()
    now = T0 + 40 * DAY + 12 * HOUR
    history = [
        (now - 20 * DAY, 100.0),  # in 30 d only
        (now - 3 * DAY, 50.0),  # in 7 d and 30 d
        (now - 5 * HOUR, 7.0),  # in 24 h
        (now - 40 * MINUTE, 3.0),  # in 1 h
        (now - 10 * MINUTE, 2.0),  # in 1 h
    ]
    for at, amount in history:
        observe(card, make_txn(at, amount=amount))
    features = card.features(make_txn(now, amount=1.0), now)
    assert features["card_history_count"] == 5
    assert features["card_count_1h"] == 2
    assert features["card_count_24h"] == 3
    assert features["card_amount_24h"] == pytest.approx(12.0)
    # Day buckets: the 7-day window covers today and the 6 days before (whole UTC days).
    assert features["card_count_7d"] == 4
    assert features["card_count_30d"] == 5
    assert features["card_amount_30d"] == pytest.approx(162.0)
    assert features["log_seconds_since_prev"] == pytest.approx(math.log1p(10 * MINUTE))


def test_a_burst_is_counted_transaction_by_transaction() -> None:
    card = new_card()
    counts = [observe(card, make_txn(T0 + i * 30, amount=5.0))["card_count_1h"] for i in range(6)]
    assert counts == [0, 1, 2, 3, 4, 5]


def test_outlier_amount_has_large_zscore_and_ratio() -> None:
    card = new_card()
    for i, amount in enumerate([18.0, 22.0, 20.0, 19.5, 21.0, 20.5, 19.0, 21.5]):
        observe(card, make_txn(T0 + i * HOUR, amount=amount))
    usual = card.features(make_txn(T0 + 9 * HOUR, amount=20.0), T0 + 9 * HOUR)
    outlier = card.features(make_txn(T0 + 9 * HOUR, amount=2000.0), T0 + 9 * HOUR)
    assert abs(usual["amount_zscore"]) < 1
    assert usual["amount_to_card_mean"] == pytest.approx(1.0, abs=0.1)
    assert outlier["amount_zscore"] > 5
    assert outlier["amount_to_card_mean"] > 50
    assert outlier["amount_zscore"] > usual["amount_zscore"]


def test_zscore_and_ratio_are_capped() -> None:
    card = new_card()
    for i in range(5):
        observe(card, make_txn(T0 + i * HOUR, amount=1.0))
    features = card.features(make_txn(T0 + 6 * HOUR, amount=900_000.0), T0 + 6 * HOUR)
    assert features["amount_zscore"] == 10.0
    assert features["amount_to_card_mean"] == 1000.0


def test_new_country_merchant_and_device() -> None:
    card = new_card()
    observe(card, make_digital_txn(T0, country="DE", merchant_id="m-1", device_id="dev-a"))
    same = card.features(
        make_digital_txn(T0 + 60, country="DE", merchant_id="m-1", device_id="dev-a"), T0 + 60
    )
    new = card.features(
        make_digital_txn(T0 + 60, country="RO", merchant_id="m-2", device_id="dev-b"), T0 + 60
    )
    assert (same["is_new_country"], same["is_new_merchant"], same["is_new_device"]) == (0, 0, 0)
    assert (new["is_new_country"], new["is_new_merchant"], new["is_new_device"]) == (1, 1, 1)
    # No device (card present) is never a new device.
    assert card.features(make_txn(T0 + 60, device_id=None), T0 + 60)["is_new_device"] == 0


def test_memories_are_bounded_and_keep_the_most_recent() -> None:
    card = new_card()
    width = len(card.row)
    for i in range(200):
        observe(
            card,
            make_digital_txn(
                T0 + i * 60,
                transaction_id=f"tx-{i:04d}",
                merchant_id=f"m-{i:04d}",
                device_id=f"dev-{i:04d}",
                country=f"C{chr(65 + i % 26)}",
            ),
        )
    assert len(card.row) == width, "a row has a fixed width"
    at = T0 + 200 * 60

    def is_new(**fields: Any) -> tuple[float, float, float]:
        features = card.features(make_digital_txn(at, **fields), at)
        return features["is_new_merchant"], features["is_new_device"], features["is_new_country"]

    newest = 200 - CardColumns.MAX_MERCHANTS
    assert is_new(merchant_id=f"m-{newest:04d}", device_id="dev-0199", country="CR") == (0, 0, 0)
    assert is_new(merchant_id=f"m-{newest - 1:04d}", device_id="dev-0000", country="CA")[:2] == (1, 1)
    assert is_new(merchant_id="m-0199", device_id=f"dev-{200 - CardColumns.MAX_DEVICES:04d}")[:2] == (0, 0)
    assert card.has_seen("tx-0199")
    assert card.has_seen(f"tx-{200 - CardColumns.MAX_RECENT_IDS:04d}")
    assert not card.has_seen(f"tx-{199 - CardColumns.MAX_RECENT_IDS:04d}")
    assert not card.has_seen("tx-0000")


def test_merchant_memory_is_least_recently_seen_out() -> None:
    card = new_card()
    for i in range(CardColumns.MAX_MERCHANTS):
        observe(card, make_txn(T0 + i, merchant_id=f"m-{i}"))
    observe(card, make_txn(T0 + 100, merchant_id="m-0"))  # seen again: now the most recent
    observe(card, make_txn(T0 + 101, merchant_id="m-new"))  # evicts m-1, the least recent
    assert card.features(make_txn(T0 + 102, merchant_id="m-0"), T0 + 102)["is_new_merchant"] == 0
    assert card.features(make_txn(T0 + 102, merchant_id="m-1"), T0 + 102)["is_new_merchant"] == 1


TXN_STEPS = st.lists(
    st.tuples(
        st.floats(0, 6 * HOUR, allow_nan=False),
        st.floats(0.5, 5000, allow_nan=False),
        st.sampled_from(["DE", "FR", "RO"]),
        st.sampled_from(["m-1", "m-2", "m-3", "m-4"]),
        st.sampled_from([None, "dev-1", "dev-2"]),
    ),
    min_size=1,
    max_size=25,
)


@PROPERTY
@given(steps=TXN_STEPS, probe_amount=st.floats(0.5, 5000, allow_nan=False))
def test_card_row_round_trips_through_its_stored_text(
    steps: list[tuple[Any, ...]], probe_amount: float
) -> None:
    card = new_card()
    at = T0
    for gap, amount, country, merchant, device in steps:
        at += gap
        observe(card, make_txn(at, amount=amount, country=country, merchant_id=merchant, device_id=device))
    restored = card.restored()
    probe = make_digital_txn(at + 90, amount=probe_amount, device_id="dev-2", merchant_id="m-2")
    assert restored.features(probe, at + 90) == card.features(probe, at + 90)
    assert restored.row.tobytes() == card.row.tobytes()
    # and both continue identically
    assert observe(restored, probe, at + 90) == observe(card, probe, at + 90)


def test_an_empty_row_is_a_new_entity_and_stores_small() -> None:
    assert new_card().restored().row.tobytes() == CARD.empty().tobytes()
    for entity in ENTITY_STAGES:
        empty = OneEntity(entity.columns)
        assert empty.restored().row.tobytes() == entity.columns.empty().tobytes()
        assert len(empty.stored()) < 100, "only the non-zero cells are stored"


# --- terminal, merchant, device, customer --------------------------------------------------------
def test_terminal_counts_distinct_cards_and_small_amount_cards_in_10_minutes() -> None:
    terminal = new_terminal()
    now = T0 + DAY
    for i in range(6):  # six cards testing with small amounts in the last 5 minutes
        observe(terminal, make_txn(now - 300 + i * 10, card_token=f"tok_small{i:05d}", amount=1.0))
    observe(terminal, make_txn(now - 200, card_token="tok_small00000", amount=2.0))  # same card again
    observe(terminal, make_txn(now - 100, card_token="tok_big000001", amount=80.0))  # big amount
    observe(terminal, make_txn(now - 30 * MINUTE, card_token="tok_old000001", amount=1.0))  # 30 min ago
    features = terminal.features(make_txn(now, amount=1.0), now)
    assert features["terminal_distinct_cards_10m"] == 7
    assert features["terminal_small_amount_cards_10m"] == 6
    assert features["terminal_count_1h"] == 9
    assert features["terminal_count_24h"] == 9


def test_terminal_forgets_events_older_than_an_hour() -> None:
    terminal = new_terminal()
    for i in range(5):
        observe(terminal, make_txn(T0 + i, card_token=f"tok_card{i:05d}", amount=1.0))
    later = T0 + 2 * HOUR
    features = observe(terminal, make_txn(later, card_token="tok_cardlate1"))
    assert features["terminal_count_1h"] == 0
    assert features["terminal_distinct_cards_10m"] == 0
    assert features["terminal_count_24h"] == 5  # the daily window still counts them
    after = terminal.features(make_txn(later + 1), later + 1)
    assert after["terminal_distinct_cards_10m"] == 1  # the rest fell out of the 10 minutes


def test_terminal_state_stays_small_however_busy() -> None:
    terminal = new_terminal()
    for i in range(5000):  # 5000 cards in 50 seconds
        observe(terminal, make_txn(T0 + i / 100, card_token=f"tok_busy{i:06d}", amount=1.0))
    features = terminal.features(make_txn(T0 + 50, amount=1.0), T0 + 50)
    assert features["terminal_distinct_cards_10m"] == TerminalColumns.MAX_CARDS  # saturates
    assert features["terminal_small_amount_cards_10m"] == TerminalColumns.MAX_CARDS
    assert features["terminal_count_1h"] == 5000  # counts do not
    assert len(terminal.stored()) < 12_000


def test_terminal_recent_ids_are_bounded() -> None:
    terminal = new_terminal()
    for i in range(100):
        observe(terminal, make_txn(T0 + i, transaction_id=f"tx-{i:04d}"))
    assert terminal.has_seen("tx-0099")
    assert terminal.has_seen(f"tx-{100 - TerminalColumns.MAX_RECENT_IDS:04d}")
    assert not terminal.has_seen(f"tx-{99 - TerminalColumns.MAX_RECENT_IDS:04d}")
    assert not terminal.has_seen("tx-0000")


def test_terminal_row_round_trips_through_its_stored_text() -> None:
    terminal = new_terminal()
    for i in range(20):
        observe(terminal, make_txn(T0 + i * 45, card_token=f"tok_card{i % 7:05d}", amount=0.5 + i))
    terminal.record_label(True, T0 + 500)
    restored = terminal.restored()
    probe = make_txn(T0 + 20 * 45, amount=1.0)
    assert restored.features(probe, T0 + 900) == terminal.features(probe, T0 + 900)
    assert restored.row.tobytes() == terminal.row.tobytes()


# --- transaction_features --------------------------------------------------------------------------
@pytest.mark.parametrize("channel", CHANNELS)
def test_channel_is_one_hot(channel: str) -> None:
    txn = (
        make_digital_txn(channel=channel)
        if channel in ("ecommerce", "mobile_app")
        else make_txn(channel=channel)
    )
    features = transaction_features(txn, T0)
    hot = {name for name, value in features.items() if name.startswith("channel_") and value == 1.0}
    assert hot == {f"channel_{channel}"}
    assert sum(features[f"channel_{c}"] for c in CHANNELS) == 1.0
    assert features["is_digital"] == float(channel in ("ecommerce", "mobile_app"))


def test_is_foreign_small_amount_contact_and_shipping() -> None:
    home = transaction_features(make_txn(country="DE", card_country="DE", amount=2.99), T0)
    abroad = transaction_features(
        make_digital_txn(
            country="RO",
            card_country="DE",
            amount=3.0,
            hours_since_contact_change=24.0,
            shipping_matches_billing=False,
        ),
        T0,
    )
    assert (home["is_foreign"], abroad["is_foreign"]) == (0.0, 1.0)
    assert (home["is_small_amount"], abroad["is_small_amount"]) == (1.0, 0.0)
    assert (home["contact_changed_24h"], home["contact_changed_7d"]) == (0.0, 0.0)
    assert (abroad["contact_changed_24h"], abroad["contact_changed_7d"]) == (1.0, 1.0)
    assert (home["shipping_mismatch"], abroad["shipping_mismatch"]) == (0.0, 1.0)
    week = transaction_features(make_txn(hours_since_contact_change=100.0), T0)
    assert (week["contact_changed_24h"], week["contact_changed_7d"]) == (0.0, 1.0)
    assert abroad["log_amount"] == pytest.approx(math.log1p(3.0))
    assert abroad["log_account_age_days"] == pytest.approx(math.log1p(400))


def test_hour_of_day_is_cyclic() -> None:
    midnight = transaction_features(make_txn(), T0)
    six = transaction_features(make_txn(), T0 + 6 * HOUR)
    assert (midnight["hour_sin"], midnight["hour_cos"]) == pytest.approx((0.0, 1.0), abs=1e-12)
    assert (six["hour_sin"], six["hour_cos"]) == pytest.approx((1.0, 0.0), abs=1e-12)


@given(
    st.lists(
        st.tuples(
            st.floats(0.01, 1e6),  # amount
            st.sampled_from(CHANNELS),
            st.sampled_from(["DE", "RO", "US", "IN", "NZ", "XX"]),  # country (XX: no known offset)
            st.sampled_from(["DE", "US"]),  # card country
            st.integers(0, 20_000),  # account age
            st.one_of(st.none(), st.floats(0, 400)),  # hours since the contact changed
            st.sampled_from([None, True, False]),  # shipping matches billing
            st.one_of(st.floats(-3 * DAY, 3 * DAY), st.floats(-T0 - 400 * DAY, 1e9)),  # event time
        ),
        min_size=1,
        max_size=40,
    )
)
@PROPERTY
def test_the_batch_columns_equal_each_transactions_own_features_to_the_bit(
    items: list[tuple[Any, ...]],
) -> None:
    txns, at = [], []
    for amount, channel, country, card_country, age, contact, shipping, moment in items:
        txns.append(
            make_txn(
                amount=amount,
                channel=channel,
                country=country,
                card_country=card_country,
                account_age_days=age,
                hours_since_contact_change=contact,
                shipping_matches_billing=shipping,
            )
        )
        at.append(T0 + moment)
    names, matrix = transaction_feature_matrix(txns, at)
    _, with_columns = transaction_feature_matrix(txns, at, TransactionColumns.of(txns, at))
    for index, (txn, moment) in enumerate(zip(txns, at, strict=True)):
        one = transaction_features(txn, moment)
        assert list(names) == list(one)
        assert matrix[index].tolist() == list(one.values())
        assert with_columns[index].tolist() == list(one.values())


def test_event_seconds_reads_the_offset() -> None:
    assert event_seconds({"event_time": "2026-06-01T02:00:00+02:00"}) == T0
    assert event_seconds({"event_time": "2026-06-01T00:00:00.000+00:00"}) == T0


# --- FEATURE_NAMES ---------------------------------------------------------------------------------
def test_feature_names_cover_exactly_the_features_produced() -> None:
    txn = make_digital_txn(hours_since_contact_change=3.0)
    produced = [
        *transaction_features(txn, T0),
        *new_card().features(txn, T0),
        *new_terminal().features(txn, T0),
        *new_merchant().features(txn, T0),
        *new_device().features(txn, T0),
        *new_customer().features(txn, T0),
    ]
    assert len(produced) == len(set(produced)), "two feature families produce the same name"
    assert set(FEATURE_NAMES) == set(produced)
    assert list(FEATURE_NAMES) == sorted(FEATURE_NAMES)
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 18 + 17 + 10 + 10 + 4 + 11


def test_device_state_counts_the_distinct_cards_a_device_pays_with() -> None:
    device = new_device()
    for index in range(6):
        txn = make_digital_txn(
            transaction_id=f"d{index}", card_token=f"tok_devicecard{index:04d}", amount=1.0
        )
        observe(device, txn, T0 + index * MINUTE)
    features = device.features(make_digital_txn(transaction_id="d-next"), T0 + 6 * MINUTE)
    assert features["device_distinct_cards_10m"] == 6
    assert features["device_small_amount_cards_10m"] == 6
    later = device.features(make_digital_txn(transaction_id="d-later"), T0 + 2 * HOUR)
    assert later["device_distinct_cards_10m"] == 0 and later["device_count_24h"] == 6


def test_customer_state_sees_a_new_device_across_all_the_customers_cards() -> None:
    customer = new_customer()
    observe(
        customer, make_digital_txn(transaction_id="c1", device_id="dev-home", card_token="tok_cardone01"), T0
    )
    same_device_other_card = make_digital_txn(
        transaction_id="c2", device_id="dev-home", card_token="tok_cardtwo02"
    )
    assert observe(customer, same_device_other_card, T0 + HOUR)["customer_is_new_device"] == 0
    new_device = make_digital_txn(transaction_id="c3", device_id="dev-thief", card_token="tok_cardone01")
    features = observe(customer, new_device, T0 + 2 * HOUR)
    assert features["customer_is_new_device"] == 1
    assert features["customer_count_24h"] == 2 and features["customer_cards"] == 2
    assert customer.restored().features(new_device, T0 + 3 * HOUR)["customer_devices_7d"] == 2


def test_terminal_fraud_rate_uses_only_labels_already_known() -> None:
    terminal = new_terminal()
    assert terminal.features(make_txn(), T0)["terminal_fraud_rate_30d"] == 0.0
    terminal.record_label(True, T0)
    terminal.record_label(False, T0 + HOUR)
    terminal.record_label(False, T0 + HOUR)
    terminal.record_label(False, T0 + HOUR)
    restored = terminal.restored()
    features = restored.features(make_txn(), T0 + DAY)
    assert features["terminal_fraud_rate_30d"] == 0.25 and features["terminal_frauds_30d"] == 1
    assert restored.features(make_txn(), T0 + 40 * DAY)["terminal_fraud_rate_30d"] == 0.0


def test_merchant_fraud_rate_counts_labels_of_all_its_terminals() -> None:
    merchant = new_merchant()
    for terminal in ("t-1", "t-2"):
        observe(merchant, make_txn(transaction_id=f"m-{terminal}", terminal_id=terminal), T0)
    merchant.record_label(True, T0 + HOUR)
    merchant.record_label(False, T0 + HOUR)
    features = merchant.restored().features(make_txn(), T0 + 2 * HOUR)
    assert features["merchant_fraud_rate_30d"] == 0.5 and features["merchant_count_24h"] == 2


def test_a_terminal_is_keyed_within_its_merchant_and_lives_on_the_merchants_partition() -> None:
    """Two merchants may number their terminals alike: each terminal has its own state, kept with
    its merchant's (so one stage serves both, one Kafka hop fewer)."""
    terminal = next(e for e in ENTITY_STAGES if e.name == "terminal")
    a = {"merchant_id": "m-1", "terminal_id": "t-1"}
    b = {"merchant_id": "m-2", "terminal_id": "t-1"}
    assert terminal.key(a) != terminal.key(b)
    assert routing_key(a, terminal.owner_field) == "m-1"
    assert owner_key(terminal, terminal.key(a) or "") == "m-1"
    assert owner_key(terminal, "t-1") == "t-1", "a key from before terminals moved is its own owner"
    device = next(e for e in ENTITY_STAGES if e.name == "device")
    assert device.key({"device_id": None}) is None
    assert (
        device.key({"device_id": "dev-1"})
        == routing_key({"device_id": "dev-1"}, device.owner_field)
        == "dev-1"
    )


def test_stages_group_the_entities_that_share_a_routing_field_in_feature_order() -> None:
    assert [(stage.name, [e.name for e in stage.entities]) for stage in STAGES] == [
        ("merchant", ["terminal", "merchant"]),
        ("device", ["device"]),
        ("customer", ["customer"]),
    ]
    assert [e for stage in STAGES for e in stage.entities] == list(ENTITY_STAGES)


def test_card_and_customer_mean_amounts_over_one_seven_and_thirty_days() -> None:
    card, customer = new_card(), new_customer()
    for days_ago, amount in ((20, 100.0), (5, 40.0), (0.1, 10.0)):
        txn = make_txn(T0 - days_ago * DAY, amount=amount)
        observe(card, txn)
        observe(customer, txn)
    now = make_txn(T0, amount=75.0)
    card_features, customer_features = card.features(now, T0), customer.features(now, T0)
    assert card_features["card_mean_amount_30d"] == customer_features["customer_mean_amount_30d"] == 50.0
    assert card_features["card_mean_amount_7d"] == customer_features["customer_mean_amount_7d"] == 25.0
    assert card_features["card_mean_amount_24h"] == customer_features["customer_mean_amount_24h"] == 10.0
    assert customer_features["customer_count_30d"] == 3
    assert customer_features["customer_amount_to_mean_30d"] == 1.5
    assert new_customer().features(now, T0)["customer_amount_to_mean_30d"] == 1.0, "no history: neutral"


def test_terminal_fraud_counts_over_one_seven_and_thirty_days_use_only_labels_known_by_then() -> None:
    terminal = new_terminal()
    terminal.record_label(True, T0 - 20 * DAY)
    terminal.record_label(False, T0 - 3 * DAY)
    terminal.record_label(True, T0 - 3 * DAY)
    terminal.record_label(True, T0 + DAY)  # known only tomorrow: not yet counted
    features = terminal.features(make_txn(T0), T0)
    assert (
        features["terminal_frauds_1d"],
        features["terminal_frauds_7d"],
        features["terminal_frauds_30d"],
    ) == (
        0.0,
        1.0,
        2.0,
    )
    assert features["terminal_fraud_rate_7d"] == 0.5 and features["terminal_fraud_rate_30d"] == 2 / 3
    assert features["terminal_fraud_rate_1d"] == 0.0, "no label known today"


def test_night_and_weekend_are_read_in_the_local_time_of_the_country() -> None:
    from pipeline.detection.features import local_time_features

    saturday_2359_utc = 1780012740.0 - 1780012740.0 % DAY + 2 * DAY + DAY - 60  # a Saturday 23:59 UTC
    assert local_time_features("GB", saturday_2359_utc) == {"is_night": 0.0, "is_weekend": 1.0}
    # 00:59 on Sunday in Germany (UTC+1): night, weekend; 18:59 on Saturday in New York: neither night
    assert local_time_features("DE", saturday_2359_utc) == {"is_night": 1.0, "is_weekend": 1.0}
    assert local_time_features("US", saturday_2359_utc) == {"is_night": 0.0, "is_weekend": 1.0}
    assert local_time_features("ZZ", saturday_2359_utc) == local_time_features("GB", saturday_2359_utc)
