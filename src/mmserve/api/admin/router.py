"""The caller's identity and the admin API (keys, deployments), for the console and for scripts.

    GET    /v1/me                                  the caller: key id, name, admin, models, limits
    GET    /v1/admin/keys?include_revoked=         {object: "list", data: [api_key]}
    POST   /v1/admin/keys                          201 api_key + "key" (the secret, this once)
    PATCH  /v1/admin/keys/{id}                     name, models, requests_per_min, tokens_per_min
    DELETE /v1/admin/keys/{id}                     revokes: {id, object: "api_key.revoked", revoked: true}
    POST   /v1/admin/deployments/{model}/load      202: loading starts (state: loading)
    POST   /v1/admin/deployments/{model}/unload    200: replicas serving no request are unloaded

Everything under /v1/admin needs an admin key (with auth off, the anonymous caller is one).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from mmserve.api.admin.protocol import KeyCreate, KeyUpdate
from mmserve.api.admin.service import AdminService, identity, require_admin
from mmserve.api.openapi import errors
from mmserve.api.state import AppState, get_state
from mmserve.control.context import principal

router = APIRouter(tags=["admin"])
ADMIN = errors(403)  # a key that is not an admin key
WITH_MODELS = errors(403, 404)  # also: a model of "models" that does not exist


def _service(state: AppState = Depends(get_state)) -> AdminService:
    require_admin(principal())
    return AdminService(state)


@router.get("/v1/me")
async def me() -> dict[str, Any]:
    return identity(principal())


@router.get("/v1/admin/keys", responses=ADMIN)
async def list_keys(include_revoked: bool = Query(default=False), s: AdminService = Depends(_service)) -> Any:
    return await s.list_keys(include_revoked)


@router.post("/v1/admin/keys", status_code=201, responses=WITH_MODELS)
async def create_key(body: KeyCreate, s: AdminService = Depends(_service)) -> Any:
    return await s.create_key(body)


@router.patch("/v1/admin/keys/{key_id}", responses=WITH_MODELS)
async def update_key(key_id: str, body: KeyUpdate, s: AdminService = Depends(_service)) -> Any:
    return await s.update_key(key_id, body)


@router.delete("/v1/admin/keys/{key_id}", responses=ADMIN)
async def revoke_key(key_id: str, s: AdminService = Depends(_service)) -> Any:
    return await s.revoke_key(key_id)


@router.post("/v1/admin/deployments/{model_id:path}/load", status_code=202, responses=ADMIN)
async def load(model_id: str, s: AdminService = Depends(_service)) -> JSONResponse:
    return JSONResponse(await s.load(model_id), status_code=202)


@router.post("/v1/admin/deployments/{model_id:path}/unload", responses=ADMIN)
async def unload(model_id: str, s: AdminService = Depends(_service)) -> Any:
    return await s.unload(model_id)
