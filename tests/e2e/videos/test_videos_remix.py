"""``POST /v1/videos/{id}/remix`` through the openai SDK: a new job from the source's settings, seed and reference."""

from __future__ import annotations

import io
import warnings

import av
import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.helpers.images import image_bytes

warnings.filterwarnings("ignore", message="The Sora API", category=DeprecationWarning)


def _frames(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as f:
        return np.stack([fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)])


def test_remix_keeps_size_length_fps_and_seed_and_takes_the_new_prompt(client: OpenAI) -> None:
    source = client.videos.create_and_poll(
        model="tiny-video", prompt="a red fox in snow", seconds="0.5", size="64x48", extra_body={"fps": 16, "seed": 3}
    )
    assert source.status == "completed" and source.remixed_from_video_id is None
    remix = client.videos.remix(source.id, prompt="a grey wolf in snow")
    assert remix.remixed_from_video_id == source.id and remix.id != source.id
    assert (remix.model, remix.size, remix.seconds, remix.prompt) == (
        "tiny-video",
        "64x48",
        "0.5",
        "a grey wolf in snow",
    )
    assert remix.status in ("queued", "in_progress")
    done = client.videos.poll(remix.id)
    assert done.status == "completed" and done.remixed_from_video_id == source.id
    assert client.videos.retrieve(remix.id).remixed_from_video_id == source.id
    remixed = _frames(client.videos.download_content(remix.id).read())
    original = _frames(client.videos.download_content(source.id).read())
    assert remixed.shape == original.shape == (8, 48, 64, 3)  # 0.5 s x 16 fps
    assert not np.array_equal(remixed, original)  # another prompt
    # the same prompt again: the source's seed makes the very same video
    again = client.videos.poll(client.videos.remix(source.id, prompt="a red fox in snow").id)
    assert np.array_equal(_frames(client.videos.download_content(again.id).read()), original)


def test_remix_of_an_image_to_video_job_reuses_its_reference(client: OpenAI) -> None:
    source = client.videos.create_and_poll(
        model="tiny-video",
        prompt="a lighthouse",
        seconds="0.25",
        size="64x48",
        input_reference=("ref.png", image_bytes((64, 48), (250, 200, 10)), "image/png"),
        extra_body={"fps": 8, "seed": 1},
    )
    assert source.status == "completed"
    remix = client.videos.remix(source.id, prompt="a lighthouse")
    client.videos.delete(source.id)  # the remix holds its own copy of the reference
    done = client.videos.poll(remix.id)
    assert done.status == "completed", done.error
    assert _frames(client.videos.download_content(done.id).read()).shape == (2, 48, 64, 3)


def test_remix_errors(client: OpenAI, video_url: str) -> None:
    with pytest.raises(openai.NotFoundError):
        client.videos.remix("video_nope", prompt="x")
    pending = client.videos.create(model="tiny-video", prompt="slow", seconds="2", size="96x64")
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.remix(pending.id, prompt="faster")
    assert e.value.body["code"] == "video_not_ready" and e.value.body["param"] == "video_id"  # type: ignore[index]
    resp = httpx.post(f"{video_url}/v1/videos/{pending.id}/remix", json={"prompt": ""})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "prompt"
    resp = httpx.post(f"{video_url}/v1/videos/{pending.id}/remix", json={})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "prompt"
    client.videos.delete(pending.id)
