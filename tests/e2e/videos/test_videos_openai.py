"""The OpenAI Videos API through the official openai SDK: create_and_poll, download, list, delete, i2v."""

from __future__ import annotations

import io
import time
import warnings

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.helpers.images import data_uri, image_bytes
from tests.helpers.videos import mp4_info

warnings.filterwarnings("ignore", message="The Sora API", category=DeprecationWarning)


def test_create_and_poll_then_download_a_matching_mp4(client: OpenAI) -> None:
    video = client.videos.create_and_poll(
        model="tiny-video", prompt="A red fox runs through snow", seconds="1", size="96x64", extra_body={"fps": 8}
    )
    assert video.status == "completed" and video.progress == 100 and video.error is None
    assert video.seconds == "1" and video.size == "96x64" and video.model == "tiny-video"
    assert video.completed_at and video.expires_at and video.expires_at > video.completed_at >= video.created_at
    data = client.videos.download_content(video.id).read()
    assert mp4_info(data) == (8, 96, 64, 8.0, "h264")  # 1 s x 8 fps, at the requested size
    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumb.format == "WEBP" and thumb.size == (96, 64)
    sheet = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sheet.format == "JPEG"


def test_fps_and_seconds_set_the_frame_count(client: OpenAI) -> None:
    video = client.videos.create_and_poll(
        model="tiny-video", prompt="waves", seconds="1", size="64x48", extra_body={"fps": 16, "seed": 5}
    )
    assert video.status == "completed"
    assert mp4_info(client.videos.download_content(video.id).read()) == (16, 64, 48, 16.0, "h264")


def test_content_supports_range_requests(client: OpenAI, video_url: str) -> None:
    video = client.videos.create_and_poll(model="tiny-video", prompt="rain", seconds="0.5", size="64x48")
    url = f"{video_url}/v1/videos/{video.id}/content"
    full = httpx.get(url)
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == full.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(full.content)}"


def test_retrieve_sends_a_poll_hint(client: OpenAI) -> None:
    video = client.videos.create(model="tiny-video", prompt="clouds", seconds="1", size="64x48")
    assert video.status in ("queued", "in_progress")
    raw = client.videos.with_raw_response.retrieve(video.id)
    assert int(raw.headers["openai-poll-after-ms"]) >= 100
    done = client.videos.poll(video.id)
    assert done.status == "completed"


@pytest.mark.parametrize("how", ["file", "image_url"])
def test_image_to_video_with_an_input_reference(client: OpenAI, how: str) -> None:
    kwargs: dict = {}
    if how == "file":
        kwargs["input_reference"] = ("ref.png", image_bytes((120, 90), (250, 200, 10)), "image/png")
    else:
        # the SDK only uploads files through input_reference=; {image_url} goes in the body
        kwargs["extra_body"] = {"input_reference": {"image_url": data_uri((120, 90), (10, 200, 250), fmt="JPEG")}}
    video = client.videos.create_and_poll(
        model="tiny-video", prompt="the scene comes alive", seconds="0.5", size="64x48", **kwargs
    )
    assert video.status == "completed", video.error
    assert mp4_info(client.videos.download_content(video.id).read())[:4] == (4, 64, 48, 8.0)  # 0.5 s x 8 fps


def test_list_pages_with_a_cursor(client: OpenAI) -> None:
    ids = [
        client.videos.create(model="tiny-video", prompt=f"clip {i}", seconds="0.5", size="64x48").id for i in range(3)
    ]
    newest = client.videos.list(limit=2, order="desc")
    assert [v.id for v in newest.data] == [ids[2], ids[1]] and newest.has_more
    assert newest.first_id == ids[2] and newest.last_id == ids[1]
    older = client.videos.list(limit=2, order="desc", after=newest.data[-1].id)
    assert older.data[0].id == ids[0]
    # the SDK's auto-pagination follows the cursor, one job per page
    auto = [v.id for v in client.videos.list(limit=1, order="asc")]
    assert [i for i in auto if i in ids] == ids and len(auto) == len(set(auto))
    for i in ids:
        client.videos.poll(i)


def test_delete_cancels_and_removes(client: OpenAI, video_url: str) -> None:
    done = client.videos.create_and_poll(model="tiny-video", prompt="a lamp", seconds="0.5", size="64x48")
    queued = client.videos.create(model="tiny-video", prompt="a long one", seconds="2", size="96x64")
    for vid in (done.id, queued.id):
        deleted = client.videos.delete(vid)
        assert deleted.deleted and deleted.id == vid and deleted.object == "video.deleted"
        with pytest.raises(openai.NotFoundError):
            client.videos.retrieve(vid)
        assert httpx.get(f"{video_url}/v1/videos/{vid}/content").status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(done.id)
    # the server keeps working after a cancellation
    after = client.videos.create_and_poll(model="tiny-video", prompt="next", seconds="0.5", size="64x48")
    assert after.status == "completed"


def test_a_failing_model_fails_the_job_with_a_clean_error(client: OpenAI) -> None:
    video = client.videos.create_and_poll(model="broken-video", prompt="boom", seconds="2", size="64x48")
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "engine_error"
    assert "Traceback" not in video.error.message and "shape" not in video.error.message
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.download_content(video.id)
    assert e.value.code == "video_failed"


async def test_async_client_polls_concurrent_jobs(video_url: str) -> None:
    aclient = openai.AsyncOpenAI(base_url=video_url + "/v1", api_key="unused", max_retries=0)
    start = time.monotonic()
    jobs = [
        await aclient.videos.create(model="tiny-video", prompt=f"p{i}", seconds="0.5", size="64x48") for i in range(2)
    ]
    done = [await aclient.videos.poll(j.id) for j in jobs]
    assert all(v.status == "completed" for v in done) and time.monotonic() - start < 120
    await aclient.close()
