"""OpenAI Videos API (/v1/videos...) and DO's /v1/video/generations: durable asynchronous jobs."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from mmserve.api.artifacts.files import file_response
from mmserve.api.openapi import MODEL, errors
from mmserve.api.state import AppState, get_state
from mmserve.api.videos.metering import video_usage
from mmserve.api.videos.protocol import VideoRemixRequest, openapi_body, read_create_request
from mmserve.api.videos.service import Variant, VideoService
from mmserve.api.videos.views import POLL_HEADER, generation_object, poll_after_ms, video_list, video_object
from mmserve.control.context import principal
from mmserve.jobs.store import VideoJob
from mmserve.storage.signing import public_base_url

router = APIRouter(tags=["videos"])


def get_owner() -> str | None:
    """Whose jobs these are: the calling API key (None when auth is off: every job is visible)."""
    return principal().key_id


def _job_response(state: AppState, job: VideoJob, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={POLL_HEADER: str(poll_after_ms(job, state.settings.jobs))})


async def _create(request: Request, state: AppState, owner: str | None) -> VideoJob:
    inp = await read_create_request(request, max_file_bytes=state.settings.limits.max_data_uri_bytes)
    return await VideoService(state).create(inp, owner=owner)


@router.post("/v1/videos", openapi_extra=openapi_body(), responses=errors(*MODEL, 415, 422))
async def create_video(
    request: Request, state: AppState = Depends(get_state), owner: str | None = Depends(get_owner)
) -> JSONResponse:
    job = await _create(request, state, owner)
    return _job_response(state, job, video_object(job))


@router.post("/v1/video/generations", include_in_schema=False)  # DO-style clients
async def create_generation(
    request: Request, state: AppState = Depends(get_state), owner: str | None = Depends(get_owner)
) -> JSONResponse:
    job = await _create(request, state, owner)
    return _job_response(state, job, generation_object(job, None))


@router.post("/v1/videos/{video_id}/remix")
async def remix_video(
    video_id: str,
    body: VideoRemixRequest,
    state: AppState = Depends(get_state),
    owner: str | None = Depends(get_owner),
) -> JSONResponse:
    job = await VideoService(state).remix(video_id, body.prompt, owner=owner)
    return _job_response(state, job, video_object(job))


@router.get("/v1/videos")
async def list_videos(
    after: str | None = Query(default=None, description="Cursor: the last id of the previous page."),
    limit: int = Query(default=20, ge=1, le=100),
    order: Literal["asc", "desc"] = Query(default="desc"),
    state: AppState = Depends(get_state),
    owner: str | None = Depends(get_owner),
) -> dict[str, Any]:
    jobs, has_more = await VideoService(state).page(owner=owner, after=after, limit=limit, order=order)
    return video_list(jobs, has_more)


@router.get("/v1/videos/{video_id}", responses=errors(404))
async def retrieve_video(
    video_id: str, request: Request, state: AppState = Depends(get_state), owner: str | None = Depends(get_owner)
) -> JSONResponse:
    service = VideoService(state)
    job = await service.get(video_id, owner=owner)
    urls = service.signed_urls(job, public_base_url(request, state.settings)) or {}
    # signed links for players (<video src> cannot send a key; they support Range): null until completed
    links = {"content_url": urls.get("url"), "thumbnail_url": urls.get("thumbnail_url")}
    return _job_response(state, job, {**video_object(job), **links, "usage": video_usage(state, job)})


@router.delete("/v1/videos/{video_id}", responses=errors(404))
async def delete_video(
    video_id: str, state: AppState = Depends(get_state), owner: str | None = Depends(get_owner)
) -> dict[str, Any]:
    deleted = await VideoService(state).delete(video_id, owner=owner)
    return {"id": deleted, "object": "video.deleted", "deleted": True}


@router.get(
    "/v1/videos/{video_id}/content",
    response_class=FileResponse,
    responses={
        200: {"content": {t: {} for t in ("video/mp4", "image/webp", "image/jpeg")}, "description": "The file"},
        206: {"content": {t: {} for t in ("video/mp4", "image/webp", "image/jpeg")}, "description": "Part of it"},
        **errors(404),
    },
)
async def video_content(
    video_id: str,
    variant: Variant = Query(default="video"),
    state: AppState = Depends(get_state),
    owner: str | None = Depends(get_owner),
) -> FileResponse:
    path, content_type, filename = await VideoService(state).content(video_id, variant, owner=owner)
    return await file_response(path, media_type=content_type, filename=filename)  # Range requests: 206


@router.get("/v1/video/generations/{video_id}", responses=errors(404))
async def do_generation(
    video_id: str, request: Request, state: AppState = Depends(get_state), owner: str | None = Depends(get_owner)
) -> JSONResponse:
    service = VideoService(state)
    job = await service.get(video_id, owner=owner)
    urls = service.signed_urls(job, public_base_url(request, state.settings))
    return _job_response(state, job, generation_object(job, urls))
