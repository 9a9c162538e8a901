"""Pure: refuse logins for a while after too many failures (no Flask here; ``monitor.auth`` uses it).

Failures are counted per key (the login form uses "user name from address" and "address") in a
sliding window; ``max_failures`` of them within ``window_seconds`` lock the key for
``lockout_seconds``. While locked, even the right password is refused, so guessing stops paying.
State is in memory, per server process, and bounded by ``max_keys``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable


class LoginThrottle:
    """Sliding-window failure counts and lockouts per key; thread-safe."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        lockout_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if window_seconds <= 0 or lockout_seconds <= 0:
            raise ValueError("window_seconds and lockout_seconds must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_failures = max_failures
        self.window = float(window_seconds)
        self.lockout = float(lockout_seconds)
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, keys: Iterable[str]) -> float | None:
        """Seconds until the most locked of ``keys`` may try again; None when none is locked."""
        now = self._clock()
        with self._lock:
            waits = [until - now for key in keys if (until := self._locked_until.get(key, 0.0)) > now]
        return max(waits) if waits else None

    def failed(self, keys: Iterable[str]) -> float | None:
        """Count a failed login for each of ``keys``; the lockout (seconds) when one is now locked."""
        now = self._clock()
        locked = False
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                if times is None:
                    times = self._failures[key] = deque()
                times.append(now)
                while times and times[0] <= now - self.window:
                    times.popleft()
                if len(times) >= self.max_failures:
                    self._locked_until[key] = now + self.lockout
                    del self._failures[key]  # a fresh count once the lockout ends
                    locked = True
            if len(self._failures) + len(self._locked_until) > self._max_keys:
                self._prune(now)
        return self.lockout if locked else None

    def succeeded(self, keys: Iterable[str]) -> None:
        """Forget the failures of ``keys`` (a successful login); lockouts stay until they end."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def __len__(self) -> int:
        """Keys with failures or a lockout (what the memory bound applies to)."""
        with self._lock:
            return len(set(self._failures) | set(self._locked_until))

    def _prune(self, now: float) -> None:
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
        for key in [k for k, times in self._failures.items() if not times or times[-1] <= now - self.window]:
            del self._failures[key]
        # still too many (a flood of distinct keys): drop the oldest failure counts, keep the lockouts
        excess = len(self._failures) + len(self._locked_until) - self._max_keys
        for key in list(self._failures)[: max(0, excess)]:
            del self._failures[key]


def wait_text(seconds: float) -> str:
    """'2 minutes', '1 minute', '40 seconds' (rounded up)."""
    if seconds > 90:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minutes"
    whole = max(1, math.ceil(seconds))
    return f"{whole} second{'s' if whole != 1 else ''}"
