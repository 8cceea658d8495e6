"""One place for the OA connectors' access tokens (DingTalk, Feishu, WeCom).

Each vendor hands out a bearer token that lives about two hours and says, in its own
error codes, when one it was sent has expired or was revoked. :class:`TokenCache`
keeps one such token: fetched on first use, reused until ``margin`` seconds before the
vendor's stated lifetime ends, renewed once when a call answers "expired".

A connector supplies only ``fetch() -> (token, lifetime_seconds)`` (raising
:class:`~connectors.base.ConnectorError` when the vendor refuses) and the codes that mean
"expired" (``expired_codes``); its single-call function raises :class:`TokenExpired` for
them (:meth:`TokenCache.check`), and :meth:`TokenCache.call` does the renew-once.

Thread safety (gunicorn threads, Celery): the refresh runs under a lock and callers that
waited on it take the token the first one fetched, so two callers never both refresh.
A renewal triggered by an "expired" answer replaces the token only if it is still the
one that was refused (another thread may have renewed it meanwhile). A failed fetch
caches nothing: the old token is dropped first and the next caller fetches again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Hashable
from typing import TypeVar

from .base import PermanentError

T = TypeVar("T")

#: Renew this long before the vendor's stated expiry: a token dying mid-call costs a retry.
DEFAULT_MARGIN = 300.0


class TokenExpired(Exception):
    """The vendor refused the token as expired/invalid; the message is the vendor's."""


class TokenCache:
    def __init__(self, connector: str, fetch: Callable[[], tuple[str, float]], *,
                 expired_codes: Collection[Hashable] = (), margin: float = DEFAULT_MARGIN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connector = connector
        self.expired_codes = frozenset(expired_codes)
        self._fetch, self._margin, self._clock = fetch, margin, clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = 0.0

    def _valid(self) -> str | None:
        token = self._token
        return token if token is not None and self._clock() < self._until else None

    def get(self) -> str:
        """The cached token, or a new one if there is none or it is about to expire."""
        token = self._valid()
        if token is not None:
            return token
        with self._lock:
            return self._valid() or self._refresh()

    def renew(self, refused: str | None = None) -> str:
        """A token other than ``refused`` (the one the vendor just called expired): the one
        another thread fetched meanwhile, or a new one."""
        with self._lock:
            token = self._valid()
            if token is not None and refused is not None and token != refused:
                return token
            return self._refresh()

    def _refresh(self) -> str:
        self._token, self._until = None, 0.0  # a failed fetch leaves nothing behind
        token, lifetime = self._fetch()
        lifetime = int(lifetime)  # vendors state whole seconds (expires_in / expire)
        # never keep a token past half its life because of the margin (short-lived tokens)
        self._until = self._clock() + lifetime - min(self._margin, lifetime / 2)
        self._token = token
        return token

    def check(self, code: Hashable, message: str) -> None:
        """Raise :class:`TokenExpired` when ``code`` is one of the vendor's expired codes."""
        if code in self.expired_codes:
            raise TokenExpired(message)

    def call(self, once: Callable[[str], T]) -> T:
        """``once(token)``; when it raises :class:`TokenExpired`, renew once and call again.
        Refused a second time is a :class:`PermanentError` (credentials or permissions)."""
        token = self.get()
        try:
            return once(token)
        except TokenExpired:
            pass
        token = self.renew(token)
        try:
            return once(token)
        except TokenExpired as err:
            raise PermanentError(f"token refused after a fresh login: {err}",
                                 connector=self.connector) from None
