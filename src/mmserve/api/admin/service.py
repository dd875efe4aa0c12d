"""The admin API's logic: the caller's identity, API keys over HTTP, deployments loaded and unloaded."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mmserve.api.admin.protocol import KeyCreate, KeyUpdate, key_object
from mmserve.api.models.service import model_entry
from mmserve.api.state import AppState
from mmserve.control.context import Principal
from mmserve.errors import NotFoundError, PermissionDeniedError

log = logging.getLogger("mmserve.admin")
_loads: set[asyncio.Task[None]] = set()  # background loads, kept referenced until they end


def require_admin(who: Principal) -> None:
    if not who.admin:
        raise PermissionDeniedError(
            "This endpoint needs an admin key (made with `mmserve keys create --admin`).", code="admin_required"
        )


def identity(who: Principal) -> dict[str, Any]:
    return {
        "object": "identity",
        "key_id": who.key_id,
        "name": who.name,
        "admin": who.admin,
        "models": list(who.models) if who.models is not None else None,
        "limits": {"requests_per_min": who.limits.requests_per_min, "tokens_per_min": who.limits.tokens_per_min},
    }


class AdminService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    def _check_models(self, models: list[str] | None) -> None:
        for i, m in enumerate(models or []):
            self.state.catalog.get(m, param=f"models[{i}]")  # 404 naming the entry

    async def list_keys(self, include_revoked: bool) -> dict[str, Any]:
        keys = await self.state.keys.list(include_revoked=include_revoked)
        return {"object": "list", "data": [key_object(k) for k in keys]}

    async def create_key(self, body: KeyCreate) -> dict[str, Any]:
        self._check_models(body.models)
        key, secret = await self.state.keys.create(
            body.name,
            models=body.models,
            requests_per_min=body.requests_per_min,
            tokens_per_min=body.tokens_per_min,
            admin=body.admin,
            expires_in_s=body.expires_in_s,
        )
        return {**key_object(key), "key": secret}  # the only time the secret leaves the server

    async def update_key(self, key_id: str, body: KeyUpdate) -> dict[str, Any]:
        fields = body.model_dump(exclude_unset=True)
        self._check_models(fields.get("models"))
        if "name" in fields and fields["name"] is None:
            fields["name"] = ""
        key = await self.state.keys.update(key_id, **fields)
        if key is None:
            raise NotFoundError(f"No active key '{key_id}'.", param="key_id", code="key_not_found")
        return key_object(key)

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        key = await self.state.keys.revoke(key_id)
        if key is None:
            raise NotFoundError(f"No active key '{key_id}'.", param="key_id", code="key_not_found")
        return {"id": key.id, "object": "api_key.revoked", "revoked": True}

    async def load(self, model_id: str) -> dict[str, Any]:
        """Start loading every replica (in the background: loads take seconds to minutes)."""
        card = self.state.catalog.get(model_id, param="model_id")
        dep = self.state.runtime.deployment(card)
        task = dep.load_in_background()
        _loads.add(task)
        task.add_done_callback(_loaded)
        return model_entry(card, dep)

    async def unload(self, model_id: str) -> dict[str, Any]:
        """Unload the replicas that serve no request now (the next request loads the model again)."""
        card = self.state.catalog.get(model_id, param="model_id")
        dep = self.state.runtime.deployment(card)
        await dep.unload("admin")
        return model_entry(card, dep)


def _loaded(task: asyncio.Task[None]) -> None:
    _loads.discard(task)
    if not task.cancelled() and task.exception() is not None:  # also kept in the deployment's error
        log.warning("admin load failed: %s", task.exception())
