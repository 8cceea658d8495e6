"""The HTTP client every connector uses: explicit timeouts and one error classification.

Connection errors, timeouts, HTTP 5xx and 429 become :class:`RetryableError`
(``retry_after`` from the ``Retry-After`` header when present). Everything else is
returned to the connector, which knows how its vendor says "validation failed"
(a 200 with ``errcode``, a 417 with ``exc_type`` …) and raises :class:`PermanentError`.
Response JSON is decoded with ``parse_float=Decimal`` so no amount ever becomes a float.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting

from .base import PermanentError, RetryableError

#: (connect, read) seconds; a vendor that takes longer is retried later, not waited for.
DEFAULT_TIMEOUT = (5.0, 30.0)
#: a read (a look-up: safe to repeat) is tried this many times within one delivery attempt
READ_TRIES = 3
#: the longest pause between two tries of a read; a vendor asking for a longer
#: ``Retry-After`` gets the attempt back instead (the outbox waits as long as asked)
READ_PAUSE_MAX = 1.0


class _Session(requests.Session):
    """A ``requests.Session`` that reads the environment once per origin.

    ``requests`` looks up the proxy variables (walking ``os.environ`` twice) and the CA
    bundle variables on every call: about a quarter of a call's CPU on a keep-alive
    connection. This session reads them the first time it calls an origin
    (scheme://host:port) and keeps them for its life, as connectors keep the settings
    they were made with; the connector registry makes connectors once per process.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[str, tuple[dict[str, str], str | None]] = {}
        self._environment_lock = threading.Lock()

    def _origin_environment(self, url: str) -> tuple[dict[str, str], str | None]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        found = self._environment.get(origin)
        if found is None:
            with self._environment_lock:
                found = self._environment[origin] = (
                    dict(requests.utils.get_environ_proxies(url)),
                    os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
        return found

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        if not self.trust_env or (proxies and "no_proxy" in proxies):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        env_proxies, bundle = self._origin_environment(url)
        proxies = {**env_proxies, **(proxies or {})}
        if verify is True or verify is None:
            verify = bundle or verify
        # what requests does after its environment look-up
        return {"proxies": merge_setting(proxies, self.proxies),
                "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify),
                "cert": merge_setting(cert, self.cert)}


class Http:
    """A keep-alive ``requests.Session`` bound to one vendor's base URL (thread-safe
    for the dispatcher's concurrent calls: urllib3 pools the connections)."""

    def __init__(self, connector: str, base_url: str, *,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 retry_after_header: str = "Retry-After") -> None:
        self.connector = connector
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        #: the header a vendor states its back-off in (Feishu: ``x-ogw-ratelimit-reset``)
        self.retry_after_header = retry_after_header
        self.session = _Session()
        self.session.headers["User-Agent"] = "yinfin-flow-connector/1"

    def longest_call(self) -> float:
        """Seconds one call may take at most: connect + read timeout."""
        t = self.timeout
        return t[0] + t[1] if isinstance(t, tuple) else 2 * t

    def longest_read(self) -> float:
        """Seconds :meth:`read` may take at most (every try and every pause)."""
        return READ_TRIES * self.longest_call() + (READ_TRIES - 1) * READ_PAUSE_MAX

    def budget(self, *, reads: int, writes: int) -> float:
        """Seconds a piece of work of ``reads`` look-ups and ``writes`` other calls may take."""
        return reads * self.longest_read() + writes * self.longest_call()

    def read(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """:meth:`request` for a call that only reads (a look-up), tried up to
        :data:`READ_TRIES` times while it fails retryably: one lost look-up must not
        cost a whole delivery attempt, which takes several calls that must all succeed.
        A ``Retry-After`` longer than :data:`READ_PAUSE_MAX` ends the tries at once."""
        for attempt in range(1, READ_TRIES + 1):
            try:
                return self.request(method, path, **kwargs)
            except RetryableError as err:
                pause = err.retry_after if err.retry_after is not None else 0.1 * attempt
                if attempt == READ_TRIES or pause > READ_PAUSE_MAX:
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send; raise :class:`RetryableError` for transport trouble, 5xx and 429."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            resp = self.session.request(method, url, **kwargs)
        except requests.Timeout as err:
            raise RetryableError(f"timeout calling {url}: {err}", connector=self.connector) from err
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as err:
            # a configuration mistake: retrying cannot help, dead-letter and say why
            raise PermanentError(f"bad URL {url!r}: {err}", connector=self.connector) from err
        except (requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as err:
            raise RetryableError(f"answer from {url} cut off or garbled: {err}",
                                 connector=self.connector) from err
        except requests.RequestException as err:
            raise RetryableError(f"cannot reach {url}: {err}", connector=self.connector) from err
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableError(
                f"HTTP {resp.status_code} from {url}: {resp.text[:500]}",
                connector=self.connector, status=resp.status_code,
                retry_after=retry_after(resp.headers.get(self.retry_after_header)
                                        or resp.headers.get("Retry-After")),
            )
        return resp


def timeout_setting(settings: Mapping[str, str], name: str,
                    default: tuple[float, float]) -> tuple[float, float]:
    """``(connect, read)`` seconds from ``settings[name]``: ``"connect,read"`` or one
    number for both; ``default`` when unset. A bad value names the variable."""
    raw = (settings.get(name) or "").strip()
    if not raw:
        return default
    try:
        parts = [float(Decimal(p.strip())) for p in raw.split(",")]
    except ArithmeticError:
        parts = []
    if len(parts) not in (1, 2) or not all(0 < p < 3600 for p in parts):
        raise ValueError(f"{name}: {raw!r} is not a timeout in seconds "
                         "(one number, or connect,read)")
    return (parts[0], parts[-1])


def retry_after(value: str | None) -> int | None:
    """Whole seconds from a ``Retry-After``-style header (``"7"``; ``"1.5"`` rounds up:
    never sooner than the vendor asked); None when absent or not a number of seconds."""
    if value and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return math.ceil(Decimal(value.strip()))
    return None


def loads(text: str | bytes) -> Any:
    """JSON with decimals kept exact."""
    return json.loads(text, parse_float=Decimal)


class MalformedReply(PermanentError):
    """The vendor answered in a shape we cannot read (a list where an object belongs, a
    field missing, a number that is not one). Asking the same again gets the same
    answer, so it is not retried: a person checks the URL, version or proxy. (A body
    that is not JSON at all, a gateway's HTML page or a cut-off body, is retried: see
    :func:`body_json`.)"""

    code = "connector_malformed"


def need_object(data: Any, connector: str, what: str) -> dict[str, Any]:
    """``data`` when it is a JSON object, else :class:`MalformedReply` naming ``what``."""
    if not isinstance(data, dict):
        raise MalformedReply(f"{what}: expected a JSON object, got {_kind(data)}",
                             connector=connector)
    return data


def need_list(data: Any, connector: str, what: str) -> list[Any]:
    """``data`` when it is a JSON array, else :class:`MalformedReply` naming ``what``."""
    if not isinstance(data, list):
        raise MalformedReply(f"{what}: expected a JSON array, got {_kind(data)}",
                             connector=connector)
    return data


def _kind(data: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             type(None): "null"}
    return names.get(type(data), "a number")


@contextmanager
def reading(connector: str, what: str) -> Iterator[None]:
    """Parse a vendor's answer inside this block: a field that is missing or of the
    wrong type (``KeyError``, ``TypeError``, ``IndexError``, a bad number …) becomes
    :class:`MalformedReply` saying what was being read, never an uncaught error."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, ArithmeticError) as err:
        raise MalformedReply(f"{what}: malformed reply ({type(err).__name__}: {err})",
                             connector=connector) from None


def body_json(resp: requests.Response, connector: str) -> Any:
    """The response's JSON.

    A 4xx that is not JSON (a wrong path, a proxy refusing us) is permanent: retrying
    the same request cannot help. A 2xx/3xx that is not JSON is a gateway in trouble
    (a maintenance page) and is retried.
    """
    try:
        return loads(resp.content)
    except ValueError:
        cls = PermanentError if 400 <= resp.status_code < 500 else RetryableError
        raise cls(
            f"HTTP {resp.status_code}: not JSON: {resp.text[:300]!r}", connector=connector,
            status=resp.status_code,
        ) from None


_NUM = "\u0000num:"


def _mark(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{_NUM}{format(value, 'f')}\u0000"
    if isinstance(value, dict):
        return {k: _mark(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(v) for v in value]
    return value


def dumps_numbers(value: Any) -> str:
    """JSON where ``Decimal`` s are written as bare JSON numbers with their exact digits.

    Some APIs (Odoo, ERPNext) want numbers, not strings, for amounts; going through
    ``float`` would risk ``0.1 + 0.2`` style digits, so the decimal text is spliced in.
    """
    text = json.dumps(_mark(value), ensure_ascii=False)
    return re.sub(r'"\\u0000num:(-?[0-9.]+)\\u0000"', r"\1", text)
