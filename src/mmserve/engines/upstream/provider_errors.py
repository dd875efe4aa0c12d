"""What a provider's failures become: mmserve's errors, naming the provider, never its key or raw body."""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping

from mmserve.engines.common.http.wire import TRANSPORT_ERRORS, ConnectTimeout, TransportTimeout
from mmserve.engines.upstream.options import UpstreamOptions
from mmserve.errors import InvalidRequestError, MMServeError, OverloadedError, UpstreamError, UpstreamTimeoutError

MESSAGE_CHARS = 200


class ProviderErrors:
    """The upstream client's error mapping (a mixin: the client has the provider's name, the card and the key)."""

    name: str
    card_id: str
    opts: UpstreamOptions
    _key: str | None

    def error_for(self, status: int, headers: Mapping[str, str], body: bytes) -> MMServeError:
        """The mmserve error for a provider's non-2xx answer."""
        message, param = self._provider_message(body)
        said = f": {message}" if message else "."
        who = f"The provider '{self.name}' of '{self.card_id}'"
        if status == 429:
            wait = retry_after(headers)
            return OverloadedError(
                f"{who} is rate-limiting mmserve's requests (HTTP 429){said} Retry later.",
                headers={"Retry-After": str(max(1, math.ceil(wait if wait is not None else 1)))},
                code="upstream_rate_limited",
            )
        if status in (401, 403):
            where = f" in {self.opts.api_key_env}" if self.opts.api_key_env else ""
            return UpstreamError(
                f"{who} refused mmserve's credentials (HTTP {status}); the operator should check the key{where}.",
                code="upstream_auth",
            )
        if status == 408:
            return UpstreamTimeoutError(f"{who} timed out (HTTP 408){said}")
        if 400 <= status < 500 and status != 404:
            return InvalidRequestError(
                f"{who} refused the request (HTTP {status}){said}", param=param, code="upstream_invalid_request"
            )
        return UpstreamError(f"{who} answered HTTP {status}{said}")

    def bad_response(self, what: str) -> UpstreamError:
        return UpstreamError(
            f"The provider '{self.name}' of '{self.card_id}' sent {what}.", code="upstream_bad_response"
        )

    def _transport_error(self, e: Exception) -> UpstreamError:
        who = f"The provider '{self.name}' of '{self.card_id}'"
        if isinstance(e, TransportTimeout):
            phase = "to connect" if isinstance(e, ConnectTimeout) else "to answer"
            return UpstreamTimeoutError(f"{who} took too long {phase}.")
        return UpstreamError(f"{who} could not be reached.", code="upstream_unreachable")

    def mid_stream_error(self, e: Exception) -> MMServeError:
        """A failure while a 2xx body is read (timeouts between chunks, a dropped connection)."""
        if isinstance(e, MMServeError):
            return e
        if isinstance(e, TRANSPORT_ERRORS):
            return self._transport_error(e)
        return self.bad_response("an unreadable answer")

    def _provider_message(self, body: bytes) -> tuple[str, str | None]:
        """The provider's short error message and the field it names, from its (OpenAI-shaped) error body."""
        try:
            doc = json.loads(body)
        except ValueError:
            return "", None
        err = doc.get("error", doc) if isinstance(doc, dict) else None
        if isinstance(err, str):
            return self.clip(err), None
        if not isinstance(err, dict):
            return "", None
        message = err.get("message") or err.get("detail") or ""
        param = err.get("param")
        ok_param = isinstance(param, str) and 0 < len(param) <= 64 and param.replace("_", "").replace(".", "").isalnum()
        return self.clip(message if isinstance(message, str) else ""), param if ok_param else None

    def clip(self, text: str) -> str:
        """At most MESSAGE_CHARS of one line of the provider's text, the key blanked out."""
        text = " ".join(text.split())
        if self._key:
            text = text.replace(self._key, "[key]")
        return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks to wait: ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or a date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
