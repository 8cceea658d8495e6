"""The HTTP client every connector uses: explicit timeouts and one error classification.

Connection errors, timeouts, HTTP 5xx and 429 become :class:`RetryableError`
(``retry_after`` from the ``Retry-After`` header when present). Everything else is
returned to the connector, which knows how its vendor says "validation failed"
(a 200 with ``errcode``, a 417 with ``exc_type`` …) and raises :class:`PermanentError`.
Response JSON is decoded with ``parse_float=Decimal`` so no amount ever becomes a float.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import requests

from .base import PermanentError, RetryableError

#: (connect, read) seconds; a vendor that takes longer is retried later, not waited for.
DEFAULT_TIMEOUT = (5.0, 30.0)


class Http:
    """A ``requests.Session`` bound to one vendor's base URL."""

    def __init__(self, connector: str, base_url: str, *,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.connector = connector
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "yinfin-flow-connector/1"

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
        except requests.RequestException as err:
            raise RetryableError(f"cannot reach {url}: {err}", connector=self.connector) from err
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableError(
                f"HTTP {resp.status_code} from {url}: {resp.text[:500]}",
                connector=self.connector, status=resp.status_code,
                retry_after=retry_after(resp.headers.get("Retry-After")),
            )
        return resp


def retry_after(value: str | None) -> float | None:
    if value and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    return None


def loads(text: str | bytes) -> Any:
    """JSON with decimals kept exact."""
    return json.loads(text, parse_float=Decimal)


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
