"""Rate limits on authentication failures: a fixed-window counter per key.

Keys are ``addr:<remote address>`` and ``token:<token prefix>``; a key over its limit
in the current window is refused (429) before any token lookup, so guessing tokens
from one address, or hammering one token id from many, stops quickly.

Where the counters live: Redis (``YINFIN_REDIS_URL`` set) so every web process and
instance shares them — ``INCR`` + ``EXPIRE`` on ``yinfin:authfail:<key>:<window>``;
otherwise in this process (the embedded single-machine default; each gunicorn worker
then counts on its own, so the effective limit is per worker). Counting only
failures keeps the cost off the success path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

#: Failures allowed per key per window.
LIMITS = {"addr": 20, "token": 10}
WINDOW_SECONDS = 60


class FailureLimiter:
    """``blocked(keys)`` before authenticating, ``failed(keys)`` after a failure."""

    def __init__(self, redis_client: Any | None = None, *, limits: dict[str, int] | None = None,
                 window: int = WINDOW_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis_client
        self.limits = dict(LIMITS if limits is None else limits)
        self.window = window
        self.clock = clock
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, redis_url: str | None, **kwargs: Any) -> FailureLimiter:
        if not redis_url:
            return cls(None, **kwargs)
        import redis

        return cls(redis.Redis.from_url(redis_url, socket_timeout=2), **kwargs)

    def _slot(self, key: str) -> str:
        return f"yinfin:authfail:{key}:{int(self.clock()) // self.window}"

    def _limit(self, key: str) -> int:
        return self.limits.get(key.split(":", 1)[0], min(self.limits.values()))

    def count(self, key: str) -> int:
        slot = self._slot(key)
        if self.redis is not None:
            return int(self.redis.get(slot) or 0)
        with self._lock:
            return self._counts.get(slot, 0)

    def blocked(self, keys: Iterable[str]) -> str | None:
        """The first key over its limit in this window (None: go ahead).

        With Redis, every key's counter comes in one ``MGET`` (one round trip per
        authenticated request, whatever the number of keys)."""
        keys = list(keys)
        if self.redis is not None and keys:
            counts = [int(v or 0) for v in self.redis.mget([self._slot(k) for k in keys])]
        else:
            counts = [self.count(k) for k in keys]
        for key, n in zip(keys, counts, strict=True):
            if n >= self._limit(key):
                return key
        return None

    def failed(self, keys: Iterable[str]) -> None:
        pipe = self.redis.pipeline() if self.redis is not None else None
        for key in keys:
            slot = self._slot(key)
            if pipe is not None:
                pipe.incr(slot)
                pipe.expire(slot, self.window * 2)
            else:
                with self._lock:
                    if len(self._counts) > 10_000:  # forget old windows; bounded memory
                        current = int(self.clock()) // self.window
                        self._counts = {k: v for k, v in self._counts.items()
                                        if k.rsplit(":", 1)[1] == str(current)}
                    self._counts[slot] = self._counts.get(slot, 0) + 1
        if pipe is not None:
            pipe.execute()  # every key's INCR and EXPIRE in one round trip
