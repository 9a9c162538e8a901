"""Compiled (numba) walks over entity state rows: pure, no Kafka.

A walk takes a batch's transactions in order; for each one it describes the transaction from its
entity's row as the row is at that moment (the features), then counts the transaction in the row, in
place. A compiled loop costs a few microseconds per transaction, whatever the batch size, where
numpy's operations on whole columns cost tens of microseconds per call (so hundreds of microseconds
for a batch of one) and needed rounds when an entity came back in a batch.

The row layouts are pipeline/detection/rows.py's (``Ring``, ``KeySlots``, ``IdRing``); each walk gets
its layout as a small integer array (``params``) built by the entity's columns in
pipeline/detection/states.py. Every sum is taken in the order numpy takes it (pairwise, in slot
order), so the rows and features are the same, bit for bit, as numpy's batch operations gave.

The module is longer than 400 lines because the walks and the row operations they inline belong
together: numba compiles them as one unit, and a change to a layout touches both.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_jit = njit(cache=True, nogil=True, boundscheck=False)

MINUTE, HOUR, DAY = 60, 3600, 86400
SMALL_AMOUNT = 3.0
SCRATCH = 4096
"""Cells of the scratch buffer a walk sums a window in: the most buckets a ring may have."""

DESCRIBE, COUNT, OBSERVE = 1, 2, 3
"""What a walk does for each transaction: its features only; count it (always); both, counting it
only when its id is not already in the row (a redelivery is counted once)."""


# --- numbers, as numpy computes them ----------------------------------------------------------------
@_jit
def floor_div(value: float, divisor: float) -> float:
    """``value // divisor`` for floats: numba computes it as Python and numpy do (``divmod``'s
    algorithm, exact near multiples)."""
    return value // divisor


@_jit
def pairwise_sum(values: np.ndarray, count: int) -> float:
    """The sum of ``values[:count]`` in numpy's order (its pairwise summation: up to 128 values,
    eight running sums and then the rest one by one; more, the two halves' sums)."""
    if count > 128:
        half = count // 2
        half -= half % 8
        return pairwise_sum(values, half) + pairwise_sum(values[half:], count - half)
    if count < 8:
        total = 0.0
        for i in range(count):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[0], values[1], values[2], values[3]
    r4, r5, r6, r7 = values[4], values[5], values[6], values[7]
    i = 8
    whole = count - count % 8
    while i < whole:
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < count:
        total += values[i]
        i += 1
    return total


@_jit
def mean(total: float, count: float) -> float:
    return total / count if count != 0.0 else 0.0


# --- rings: counts and sums in time buckets ----------------------------------------------------------
@_jit
def _in_run(slot: int, first: int, last: int, size: int) -> bool:
    """Whether ``slot`` holds one of the buckets ``first`` to ``last`` (a circular run of slots)."""
    length = min(max(last - first + 1, 0), size)
    start = first % size
    end = start + length
    return (start <= slot < end) or slot < end - size


@_jit
def ring_window(
    row: np.ndarray,
    offset: int,
    size: int,
    width: int,
    now: float,
    window: int,
    cells: int,
    scratch: np.ndarray,
) -> float:
    """The sum of the ring's counts (``cells`` 1) or amount sums (``cells`` 1 + size) over the window
    of ``window`` seconds ending at ``now``: whole buckets, ``(bucket(now) - window // width,
    bucket(now)]``."""
    newest = int(row[offset])
    last = int(floor_div(now, float(width)))
    first = max(last - window // width, newest - size) + 1
    last = min(last, newest)
    base = offset + cells
    length = min(max(last - first + 1, 0), size)
    if length == size:  # every slot in the window: the row's own cells, in slot order
        return pairwise_sum(row[base : base + size], size)
    for slot in range(size):
        scratch[slot] = 0.0
    slot = first % size
    for _ in range(length):  # the slots of the run (``_in_run``)
        scratch[slot] = row[base + slot]
        slot += 1
        if slot == size:
            slot = 0
    return pairwise_sum(scratch, size)


@_jit
def ring_count(row: np.ndarray, offset: int, size: int, width: int, now: float, window: int) -> float:
    """``ring_window`` of the counts (``cells`` 1), adding only the buckets in the window: counts
    are whole numbers (each event adds 1.0), whose sum is exact in any order, so it is the same to
    the bit as the pairwise sum over every slot."""
    newest = int(row[offset])
    last = int(floor_div(now, float(width)))
    first = max(last - window // width, newest - size) + 1
    last = min(last, newest)
    length = min(max(last - first + 1, 0), size)
    slot = first % size
    base = offset + 1
    total = 0.0
    for _ in range(length):
        total += row[base + slot]
        slot += 1
        if slot == size:
            slot = 0
    return total


@_jit
def ring_add(row: np.ndarray, offset: int, size: int, width: int, at: float, amount: float) -> None:
    """One event of ``amount`` at ``at``: a newer bucket first empties the buckets that leave the
    horizon; an event older than every bucket kept is dropped."""
    index = int(floor_div(at, float(width)))
    before = int(row[offset])
    newest = max(before, index)
    if newest > before:
        first, last = before - size + 1, newest - size
        for slot in range(size):
            if _in_run(slot, first, last, size):
                row[offset + 1 + slot] = 0.0
                row[offset + 1 + size + slot] = 0.0
        row[offset] = float(newest)
    if index > newest - size:
        slot = index % size
        row[offset + 1 + slot] += 1.0
        row[offset + 1 + size + slot] += amount


# --- key slots: a bounded set of hashed keys ----------------------------------------------------------
@_jit
def slots_contain(row: np.ndarray, offset: int, size: int, key: float) -> bool:
    if key == 0.0:
        return False
    for slot in range(size):  # noqa: SIM110 (numba compiles loops, not generators)
        if row[offset + slot] == key:
            return True
    return False


@_jit
def slots_occupied(row: np.ndarray, offset: int, size: int) -> int:
    held = 0
    for slot in range(size):
        if row[offset + slot] != 0.0:
            held += 1
    return held


@_jit
def slots_seen_between(row: np.ndarray, offset: int, size: int, since: float, until: float) -> int:
    """Keys (of timed slots) last seen within [since, until]."""
    seen = 0
    for slot in range(size):
        when = row[offset + size + slot]
        if row[offset + slot] != 0.0 and when >= since and when <= until:
            seen += 1
    return seen


@_jit
def slots_remember(
    row: np.ndarray, offset: int, size: int, timed: bool, ordered: bool, key: float, when: float, order: float
) -> None:
    """The row sees ``key``: a known key gets ``order`` and ``when`` (the later of both when not
    ordered); a new one takes the first free slot or, when full, the slot of the first inserted key
    (``ordered``) or else of the least recently seen."""
    known, free = -1, -1
    for slot in range(size):
        held = row[offset + slot]
        if known < 0 and held == key:
            known = slot
        if free < 0 and held == 0.0:
            free = slot
    if known >= 0:
        chosen = known
    elif free >= 0:
        chosen = free
    else:
        ranks = offset + size * (2 if timed and ordered else 1)
        chosen = 0
        for slot in range(1, size):
            if row[ranks + slot] < row[ranks + chosen]:
                chosen = slot
    row[offset + chosen] = key
    if timed:
        cell = offset + size + chosen
        row[cell] = when if ordered or known < 0 else max(row[cell], when)
    if ordered:
        row[offset + size * (2 if timed else 1) + chosen] = order


@_jit
def slots_forget_before(row: np.ndarray, offset: int, size: int, ordered: bool, horizon: float) -> None:
    """Drop the keys (of timed slots) last seen before ``horizon``."""
    for slot in range(size):
        if row[offset + size + slot] < horizon and row[offset + slot] != 0.0:
            row[offset + slot] = 0.0
            row[offset + size + slot] = 0.0
            if ordered:
                row[offset + 2 * size + slot] = 0.0


# --- the ring of recent transaction ids -------------------------------------------------------------
@_jit
def ids_contain(row: np.ndarray, offset: int, size: int, transaction: float) -> bool:
    for slot in range(size):  # noqa: SIM110 (numba compiles loops, not generators)
        if row[offset + slot] == transaction:
            return True
    return False


@_jit
def ids_add(row: np.ndarray, offset: int, size: int, position: int, transaction: float) -> None:
    written = row[position]
    row[offset + int(written % size)] = transaction
    row[position] = written + 1.0


# --- the walks, one per kind of entity --------------------------------------------------------------
@_jit
def _counts_this_time(mode: int, row: np.ndarray, ids: np.ndarray, p: np.ndarray, known: bool) -> bool:
    if mode == COUNT:
        return True
    return mode == OBSERVE and known and not ids_contain(row, p[0], p[1], ids)


@_jit
def walk_card(
    mode: int,
    params: np.ndarray,
    matrix: np.ndarray,
    positions: np.ndarray,
    known_rows: int,
    at: np.ndarray,
    amount: np.ndarray,
    log_amount: np.ndarray,
    ids: np.ndarray,
    countries: np.ndarray,
    merchants: np.ndarray,
    devices: np.ndarray,
    out: np.ndarray,
) -> None:
    """A card's features (pipeline/detection/states.py, ``CardColumns.names`` in order) and counts."""
    recent, day, long = params[0:3], params[3:6], params[6:9]  # offset, size, width
    count_at, log_mean_at, log_m2_at, last_seen_at = params[9], params[10], params[11], params[12]
    countries_at, merchants_at, devices_at = params[13:15], params[15:17], params[17:19]  # offset, size
    id_ring = params[19:22]
    scratch = np.empty(SCRATCH)
    for i in range(len(positions)):
        row = matrix[positions[i]]
        now, value = at[i], amount[i]
        count = row[count_at]
        if mode != COUNT:
            count_24h = ring_count(row, day[0], day[1], day[2], now, DAY)
            sum_24h = ring_window(row, day[0], day[1], day[2], now, DAY, 1 + day[1], scratch)
            count_7d = ring_count(row, long[0], long[1], long[2], now, 7 * DAY)
            sum_7d = ring_window(row, long[0], long[1], long[2], now, 7 * DAY, 1 + long[1], scratch)
            count_30d = ring_count(row, long[0], long[1], long[2], now, 30 * DAY)
            sum_30d = ring_window(row, long[0], long[1], long[2], now, 30 * DAY, 1 + long[1], scratch)
            known = count >= 2
            std = math.sqrt(row[log_m2_at] / (count - 1)) if known else 0.0
            zscore = (log_amount[i] - row[log_mean_at]) / max(std, 0.25) if known else 0.0
            typical = max(math.expm1(row[log_mean_at]), 1.0)
            ratio = value / typical if known else 1.0
            seen = count > 0
            since_prev = now - row[last_seen_at] if seen else 30.0 * DAY
            out[i, 0] = min(count, 1000.0)
            out[i, 1] = ring_count(row, recent[0], recent[1], recent[2], now, HOUR)
            out[i, 2] = count_24h
            out[i, 3] = sum_24h
            out[i, 4] = count_7d
            out[i, 5] = count_30d
            out[i, 6] = sum_30d
            out[i, 7] = sum_7d
            out[i, 8] = mean(sum_24h, count_24h)
            out[i, 9] = mean(sum_7d, count_7d)
            out[i, 10] = mean(sum_30d, count_30d)
            out[i, 11] = min(max(zscore, -10.0), 10.0)
            out[i, 12] = min(ratio, 1000.0)
            out[i, 13] = math.log1p(max(since_prev, 0.0))
            out[i, 14] = (
                1.0
                if seen and not slots_contain(row, countries_at[0], countries_at[1], countries[i])
                else 0.0
            )
            out[i, 15] = (
                1.0
                if seen and not slots_contain(row, merchants_at[0], merchants_at[1], merchants[i])
                else 0.0
            )
            has_device = devices[i] != 0.0
            out[i, 16] = (
                1.0
                if has_device and not slots_contain(row, devices_at[0], devices_at[1], devices[i])
                else 0.0
            )
        if not _counts_this_time(mode, row, ids[i], id_ring, positions[i] < known_rows):
            continue
        ring_add(row, recent[0], recent[1], recent[2], now, value)
        ring_add(row, day[0], day[1], day[2], now, value)
        ring_add(row, long[0], long[1], long[2], now, value)
        seen = count > 0
        count = row[count_at] = count + 1.0
        delta = log_amount[i] - row[log_mean_at]
        new_mean = row[log_mean_at] = row[log_mean_at] + delta / count
        row[log_m2_at] += delta * (log_amount[i] - new_mean)
        row[last_seen_at] = max(now, row[last_seen_at]) if seen else now
        slots_remember(row, countries_at[0], countries_at[1], False, True, countries[i], 0.0, count)
        slots_remember(row, merchants_at[0], merchants_at[1], False, True, merchants[i], 0.0, count)
        if devices[i] != 0.0:
            slots_remember(row, devices_at[0], devices_at[1], False, True, devices[i], 0.0, count)
        ids_add(row, id_ring[0], id_ring[1], id_ring[2], ids[i])


@_jit
def walk_activity(
    mode: int,
    params: np.ndarray,
    matrix: np.ndarray,
    positions: np.ndarray,
    known_rows: int,
    at: np.ndarray,
    amount: np.ndarray,
    ids: np.ndarray,
    cards: np.ndarray,
    out: np.ndarray,
) -> None:
    """A terminal's, merchant's or device's features (``ActivityColumns``' names in order: distinct
    cards, small-amount cards, counts; then, for labelled ones, fraud rate and frauds over 1, 7 and
    30 days) and counts. ``params[13]`` is 1 for a labelled entity."""
    cards_at, small_at = params[0:2], params[2:4]  # offset, size
    hourly, daily = params[4:7], params[7:10]  # offset, size, width
    id_ring = params[10:13]
    labelled = params[13] == 1
    labels, frauds = params[14:17], params[17:20]
    cards_seconds = params[20]
    for i in range(len(positions)):
        row = matrix[positions[i]]
        now = at[i]
        if mode != COUNT:
            since, until = now - cards_seconds, now + MINUTE
            out[i, 0] = slots_seen_between(row, cards_at[0], cards_at[1], since, until)
            out[i, 1] = slots_seen_between(row, small_at[0], small_at[1], since, until)
            out[i, 2] = ring_count(row, hourly[0], hourly[1], hourly[2], now, HOUR)
            out[i, 3] = ring_count(row, daily[0], daily[1], daily[2], now, DAY)
            if labelled:
                column = 4
                for days in (1, 7, 30):
                    labelled_count = ring_count(row, labels[0], labels[1], labels[2], now, days * DAY)
                    fraud_count = ring_count(row, frauds[0], frauds[1], frauds[2], now, days * DAY)
                    out[i, column] = mean(fraud_count, labelled_count)
                    out[i, column + 1] = fraud_count
                    column += 2
        if not _counts_this_time(mode, row, ids[i], id_ring, positions[i] < known_rows):
            continue
        horizon = now - cards_seconds
        slots_forget_before(row, cards_at[0], cards_at[1], False, horizon)
        slots_remember(row, cards_at[0], cards_at[1], True, False, cards[i], now, 0.0)
        if amount[i] < SMALL_AMOUNT:
            slots_forget_before(row, small_at[0], small_at[1], False, horizon)
            slots_remember(row, small_at[0], small_at[1], True, False, cards[i], now, 0.0)
        ring_add(row, hourly[0], hourly[1], hourly[2], now, amount[i])
        ring_add(row, daily[0], daily[1], daily[2], now, amount[i])
        ids_add(row, id_ring[0], id_ring[1], id_ring[2], ids[i])


@_jit
def walk_customer(
    mode: int,
    params: np.ndarray,
    matrix: np.ndarray,
    positions: np.ndarray,
    known_rows: int,
    at: np.ndarray,
    amount: np.ndarray,
    ids: np.ndarray,
    cards: np.ndarray,
    devices: np.ndarray,
    out: np.ndarray,
) -> None:
    """A customer's features (``CustomerColumns.names`` in order) and counts."""
    window, month = params[0:3], params[3:6]  # offset, size, width
    devices_at, cards_at = params[6:8], params[8:10]  # offset, size
    count_at = params[10]
    id_ring = params[11:14]
    scratch = np.empty(SCRATCH)
    for i in range(len(positions)):
        row = matrix[positions[i]]
        now, value = at[i], amount[i]
        if mode != COUNT:
            count_24h = ring_count(row, window[0], window[1], window[2], now, DAY)
            amount_24h = ring_window(row, window[0], window[1], window[2], now, DAY, 1 + window[1], scratch)
            count_7d = ring_count(row, month[0], month[1], month[2], now, 7 * DAY)
            amount_7d = ring_window(row, month[0], month[1], month[2], now, 7 * DAY, 1 + month[1], scratch)
            count_30d = ring_count(row, month[0], month[1], month[2], now, 30 * DAY)
            amount_30d = ring_window(row, month[0], month[1], month[2], now, 30 * DAY, 1 + month[1], scratch)
            mean_30d = mean(amount_30d, count_30d)
            recent_devices = 0
            for slot in range(devices_at[1]):
                if (
                    row[devices_at[0] + slot] != 0.0
                    and now - row[devices_at[0] + devices_at[1] + slot] <= 7 * DAY
                ):
                    recent_devices += 1
            new_device = devices[i] != 0.0 and row[count_at] > 0
            new_device = new_device and not slots_contain(row, devices_at[0], devices_at[1], devices[i])
            out[i, 0] = count_24h
            out[i, 1] = amount_24h
            out[i, 2] = count_7d
            out[i, 3] = recent_devices
            out[i, 4] = 1.0 if new_device else 0.0
            out[i, 5] = slots_occupied(row, cards_at[0], cards_at[1])
            out[i, 6] = count_30d
            out[i, 7] = mean(amount_24h, count_24h)
            out[i, 8] = mean(amount_7d, count_7d)
            out[i, 9] = mean_30d
            out[i, 10] = min(value / mean_30d, 1000.0) if mean_30d != 0.0 else 1.0
        if not _counts_this_time(mode, row, ids[i], id_ring, positions[i] < known_rows):
            continue
        ring_add(row, window[0], window[1], window[2], now, value)
        ring_add(row, month[0], month[1], month[2], now, value)
        count = row[count_at] = row[count_at] + 1.0
        if devices[i] != 0.0:
            slots_remember(row, devices_at[0], devices_at[1], True, True, devices[i], now, count)
        slots_remember(row, cards_at[0], cards_at[1], False, True, cards[i], 0.0, count)
        ids_add(row, id_ring[0], id_ring[1], id_ring[2], ids[i])


@_jit
def walk_labels(
    labels: np.ndarray,
    frauds: np.ndarray,
    matrix: np.ndarray,
    positions: np.ndarray,
    is_fraud: np.ndarray,
    at: np.ndarray,
) -> None:
    """Each label counts in its entity's row, in order: one more label, and one more fraud if so
    (``labels`` and ``frauds``: the rings' offset, size, width)."""
    for i in range(len(positions)):
        row = matrix[positions[i]]
        ring_add(row, labels[0], labels[1], labels[2], at[i], 1.0)
        if is_fraud[i]:
            ring_add(row, frauds[0], frauds[1], frauds[2], at[i], 1.0)


# --- half-space trees (pipeline/detection/anomaly.py) ------------------------------------------------
@_jit
def _fmin(a: float, b: float) -> float:
    """numpy's fmin: the smaller, ignoring a NaN (river's running Min skips NaN)."""
    if a != a:
        return b
    if b != b:
        return a
    return min(a, b)


@_jit
def _fmax(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    return max(a, b)


@_jit
def _leaf(
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    tree: int,
    height: int,
) -> int:
    """The leaf (0 .. 2**height - 1) the row ``x``, min-max scaled by ``lo`` and ``hi`` as river's
    MinMaxScaler does (0 where hi == lo), reaches in ``tree``."""
    node = 0
    for _ in range(height):
        column = feature[tree, node]
        span = hi[column] - lo[column]
        scaled = (x[column] - lo[column]) / span if span != 0.0 else 0.0
        # ``<`` and not ``>=``: a NaN goes right, as in river's ``left if x < t else right``.
        node = 2 * node + 1 if scaled < threshold[tree, node] else 2 * node + 2
    return node - (2**height - 1)


@_jit
def _path_scores(r_mass: np.ndarray, leaf_score: np.ndarray, height: int, window_size: int) -> None:
    """river's score of the path to each leaf of each tree: the sum of mass * 2**depth along it,
    stopping after the first node whose reference mass is under 0.1 * window_size."""
    limit = 0.1 * window_size
    for tree in range(r_mass.shape[0]):
        for leaf in range(2**height):
            node_of_leaf = leaf + 2**height - 1
            total, reached = 0, True
            for depth in range(height + 1):
                node = ((node_of_leaf + 1) >> (height - depth)) - 1
                mass = r_mass[tree, node]
                if reached:
                    total += mass * (1 << depth)
                reached = reached and mass >= limit
            leaf_score[tree, leaf] = total


@_jit
def walk_half_space_trees(
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    r_mass: np.ndarray,
    l_mass: np.ndarray,
    leaf_score: np.ndarray,
    state: np.ndarray,
    warmup: int,
    window_size: int,
    height: int,
    scores: np.ndarray,
) -> None:
    """Each row's anomaly score (NaN while warming up), learning the rows in order, as river's
    ``MinMaxScaler() | HalfSpaceTrees()`` one row at a time: a row is scored with the scaler as it
    was before it and the reference mass of the last full window, then the scaler and the latest
    window's mass learn it; a full window becomes the reference. ``state`` is (rows seen, rows in
    the latest window, 1 while the first window fills), updated in place with everything else."""
    n_trees = feature.shape[0]
    max_score = n_trees * window_size * (2 ** (height + 1) - 1)
    for i in range(x.shape[0]):
        row = x[i]
        if state[0] >= warmup:
            if state[2] == 1:
                scores[i] = 0.0  # river scores 0 until its first window has filled
            else:
                total = 0
                for tree in range(n_trees):
                    total += leaf_score[tree, _leaf(row, lo, hi, feature, threshold, tree, height)]
                scores[i] = 1.0 - total / max_score
        else:
            scores[i] = np.nan
        for column in range(row.shape[0]):
            lo[column] = _fmin(lo[column], row[column])
            hi[column] = _fmax(hi[column], row[column])
        for tree in range(n_trees):
            node = _leaf(row, lo, hi, feature, threshold, tree, height) + 2**height - 1
            while True:
                l_mass[tree, node] += 1
                if node == 0:
                    break
                node = (node - 1) // 2
        state[0] += 1
        state[1] += 1
        if state[1] == window_size:
            r_mass[:] = l_mass
            l_mass[:] = 0
            _path_scores(r_mass, leaf_score, height, window_size)
            state[1], state[2] = 0, 0


def compile_trees() -> None:
    """Compile ``walk_half_space_trees`` (or load it from numba's cache) with the argument types the
    anomaly detector passes."""
    height, masses = 1, np.zeros((1, 3), dtype=np.int64)
    walk_half_space_trees(
        np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.zeros((1, 1), dtype=np.intp), np.zeros((1, 1)),
        masses, masses.copy(), np.zeros((1, 2), dtype=np.int64), np.zeros(3, dtype=np.int64), 0, 1, height,
        np.zeros(1),
    )  # fmt: skip
