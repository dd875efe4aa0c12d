"""Signed, expiring artifact URLs (HMAC-SHA256), correct behind a reverse proxy.

A link is ``{base}/v1/artifacts/{id}?expires=<unix>&signature=<hex>``. The base is, in
order: ``Settings.public_base_url``; the ``X-Forwarded-Proto/Host/Prefix`` headers when the
peer is a trusted proxy; the URL the request came in on.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import time
from pathlib import Path

from fastapi import Request

from mmserve.errors import PermissionDeniedError
from mmserve.settings import Settings

_EXPIRES = re.compile(r"[0-9]{1,15}")  # a Unix time, as query() writes it


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlSigner:
        if settings.secret_key:
            return cls(settings.secret_key.encode())
        key_file = settings.data_dir / "secret.key"
        return cls(_load_or_create(key_file))

    def signature(self, aid: str, expires: int) -> str:
        return hmac.new(self.secret, f"{aid}:{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, aid: str, ttl_s: float) -> str:
        expires = int(time.time() + ttl_s)
        return f"expires={expires}&signature={self.signature(aid, expires)}"

    def verify(self, aid: str, expires: str | None, signature: str | None) -> None:
        # str.isdigit() admits "²" and int() has a digit limit: only what query() writes is read
        if not expires or not signature or not _EXPIRES.fullmatch(expires):
            raise PermissionDeniedError("This link is not signed.", code="invalid_signature")
        # compare_digest refuses non-ASCII str (TypeError): compare bytes
        if not hmac.compare_digest(self.signature(aid, int(expires)).encode(), signature.encode()):
            raise PermissionDeniedError("This link's signature is invalid.", code="invalid_signature")
        if int(expires) < time.time():
            raise PermissionDeniedError("This link has expired; request a new one.", code="link_expired")


def public_base_url(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    peer = request.client.host if request.client else ""
    if _trusted(peer, settings.trusted_proxies):
        h = request.headers
        host = h.get("x-forwarded-host", "").split(",")[0].strip()
        if host:
            proto = h.get("x-forwarded-proto", "").split(",")[0].strip() or request.url.scheme
            prefix = h.get("x-forwarded-prefix", "").split(",")[0].strip().rstrip("/")
            return f"{proto}://{host}{prefix}"
    return str(request.base_url).rstrip("/")


def artifact_url(request: Request, settings: Settings, signer: UrlSigner, aid: str, ttl_s: float) -> str:
    return f"{public_base_url(request, settings)}/v1/artifacts/{aid}?{signer.query(aid, ttl_s)}"


def _trusted(peer: str, proxies: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    for entry in proxies:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _load_or_create(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(key)
        tmp.chmod(0o600)
        # link() fails if another process created the key first: then both use that one
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink(missing_ok=True)
        return path.read_bytes()
