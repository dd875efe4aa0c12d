"""GET /v1/artifacts/{id}: a generated file behind a signed, expiring link (Range supported)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from mmserve.api.artifacts.files import file_response
from mmserve.api.openapi import errors
from mmserve.api.state import AppState, get_state

router = APIRouter(tags=["artifacts"])


@router.get(
    "/v1/artifacts/{artifact_id}",
    response_class=FileResponse,
    responses={
        200: {"content": {"*/*": {}}, "description": "The file, in its own type"},
        206: {"content": {"*/*": {}}, "description": "Part of the file (a Range request)"},
        **errors(403, 404),
    },
)
async def get_artifact(
    artifact_id: str,
    expires: str | None = Query(default=None),
    signature: str | None = Query(default=None),
    state: AppState = Depends(get_state),
) -> FileResponse:
    state.signer.verify(artifact_id, expires, signature)  # 403 on a forged or expired link
    art, path = await asyncio.to_thread(state.artifacts.get, artifact_id)  # 404 when gone
    return await file_response(
        path, media_type=art.content_type, filename=art.filename, headers={"Cache-Control": "private, max-age=300"}
    )
