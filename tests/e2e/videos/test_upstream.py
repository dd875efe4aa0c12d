"""Video cards on a third-party provider through the openai SDK against `mmserve serve`: jobs submitted,
polled and downloaded into mmserve's own files, remote failures, links, and a provider's job that
survives mmserve being killed."""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import yaml
from openai import OpenAI
from PIL import Image

from tests.helpers.fake_provider import FakeProvider
from tests.helpers.process import ServerProcess
from tests.helpers.upstream import KEY_ENV, upstream_catalog, usage_of
from tests.helpers.videos import mp4_info

warnings.filterwarnings("ignore", message="The Sora API", category=DeprecationWarning)


@pytest.fixture(scope="module")
def client(upstream_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=upstream_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _submits(fake: FakeProvider, prompt: str) -> int:
    return sum(1 for r in fake.requests if r.get("prompt") == prompt and r.get("model") == "their-video")


def test_a_job_runs_on_the_provider_and_is_served_as_mmserves_files(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    before = usage_of(upstream_server.url, "remote-video", 0)
    raw = client.videos.with_raw_response.create(model="remote-video", prompt="a green dawn", seconds="2", size="64x48")
    assert raw.headers["x-mmserve-model"] == "remote-video"
    video = client.videos.poll(raw.parse().id)
    assert video.status == "completed" and video.progress == 100 and video.model == "remote-video"
    sent = next(r for r in reversed(upstream.requests) if r.get("prompt") == "a green dawn")
    assert sent == {"model": "their-video", "prompt": "a green dawn", "seconds": "2", "size": "64x48"}
    data = client.videos.download_content(video.id).read()
    assert mp4_info(data) == (16, 64, 48, 8.0, "h264")  # 2 s x 8 fps, re-encoded by mmserve
    with av.open(io.BytesIO(data)) as container:
        greens = [f.to_ndarray(format="rgb24")[..., 1].mean() for f in container.decode(video=0)]
    assert greens[0] < 40 and greens[-1] > 215 and np.all(np.diff(greens) > -10)  # the provider's frames, in order
    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumb.size == (64, 48)
    after = usage_of(upstream_server.url, "remote-video", before["requests"] + 1)
    assert after["video_seconds"] - before["video_seconds"] == pytest.approx(2.0)
    assert after["cost"] - before["cost"] == pytest.approx(0.2)


def test_image_to_video_sends_the_reference_mmserve_bounded(client: OpenAI, upstream: FakeProvider) -> None:
    photo = io.BytesIO()
    Image.new("RGB", (300, 150), (200, 100, 0)).save(photo, "JPEG")
    video = client.videos.create_and_poll(
        model="remote-video",
        prompt="the sun sets",
        seconds="1",
        size="64x48",
        input_reference=("ref.jpg", photo.getvalue(), "image/jpeg"),
    )
    assert video.status == "completed"
    sent = next(r for r in reversed(upstream.requests) if r.get("prompt") == "the sun sets")
    assert sent["input_reference"] == {"size": (64, 32), "format": "PNG"}  # decoded, bounded, re-encoded


def test_a_job_the_provider_fails_fails_with_its_short_reason(client: OpenAI, upstream: FakeProvider) -> None:
    video = client.videos.create_and_poll(model="remote-video", prompt="please fail", seconds="1", size="64x48")
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "upstream_job_failed"
    assert "fakeai" in video.error.message and "refused" in video.error.message
    assert upstream.key not in video.error.message


def test_a_link_in_the_video_object_is_fetched_safely(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.video_links = True
    downloads = len(upstream.downloads)
    video = client.videos.create_and_poll(model="remote-video", prompt="linked", seconds="1", size="64x48")
    assert video.status == "completed" and len(upstream.downloads) == downloads  # the link, not /content
    assert mp4_info(client.videos.download_content(video.id).read())[0] == 8
    upstream.link_base = "http://10.9.9.9"
    video = client.videos.create_and_poll(model="remote-video", prompt="linked privately", seconds="1", size="64x48")
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "upstream_bad_output" and "private, loopback" in video.error.message


@pytest.fixture
def lone_server(upstream: FakeProvider, tmp_path: Path, data_dir: Path) -> Iterator[ServerProcess]:
    catalog = upstream_catalog(upstream.base_url)
    catalog = {"models": [m for m in catalog["models"] if m["id"] == "remote-video"]}
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump(catalog))
    env = {
        KEY_ENV: upstream.key,
        "MMSERVE_JOBS__PROGRESS_INTERVAL_S": "0.1",
        "MMSERVE_JOBS__DISPATCH_INTERVAL_S": "0.2",
    }
    server = ServerProcess(tmp_path / "data", config, env=env)
    yield server
    server.stop()


@pytest.mark.slow
def test_a_providers_job_survives_mmserve_being_killed(lone_server: ServerProcess, upstream: FakeProvider) -> None:
    upstream.hold_videos = True  # the provider's job stays in progress until released
    lone_server.start(wait_for=[])
    created = httpx.post(
        f"{lone_server.url}/v1/videos",
        json={"model": "remote-video", "prompt": "survive a crash", "seconds": "1", "size": "64x48"},
        timeout=30,
    ).json()

    def job() -> dict[str, Any]:
        return dict(httpx.get(f"{lone_server.url}/v1/videos/{created['id']}", timeout=10).json())

    deadline = time.monotonic() + 60
    # the provider's 50 % is 45 % on the runner's 0-90 % generation scale: mmserve polls the job it kept
    while not (job()["status"] == "in_progress" and job()["progress"] >= 45):
        assert time.monotonic() < deadline, job()
        time.sleep(0.05)
    lone_server.kill9()
    upstream.hold_videos = False
    lone_server.start(wait_for=[])
    deadline = time.monotonic() + 120
    while (status := job()["status"]) != "completed":
        assert status in ("queued", "in_progress") and time.monotonic() < deadline, job()
        time.sleep(0.1)
    assert _submits(upstream, "survive a crash") == 1  # the same remote job, polled again: not paid for twice
    content = httpx.get(f"{lone_server.url}/v1/videos/{created['id']}/content", timeout=30)
    assert content.status_code == 200 and mp4_info(content.content)[:3] == (8, 64, 48)


def test_a_job_whose_provider_cannot_be_reached_is_made_by_the_local_model(client: OpenAI) -> None:
    raw = client.videos.with_raw_response.create(model="videos-remote-first", prompt="fall back", seconds="1")
    assert raw.headers["x-mmserve-model"] == "remote-video-down"  # bound when submitted; it fails when run
    video = client.videos.poll(raw.parse().id, poll_interval_ms=200)
    assert video.status == "completed" and video.model == "local-video"
    assert mp4_info(client.videos.download_content(video.id).read())[:3] == (8, 64, 48)


def test_a_job_whose_local_model_is_broken_is_made_by_the_provider(client: OpenAI, upstream: FakeProvider) -> None:
    video = client.videos.create_and_poll(model="videos-local-first", prompt="to the provider", seconds="1")
    assert video.status == "completed" and video.model == "remote-video"
    assert _submits(upstream, "to the provider") == 1


def test_a_job_the_provider_fails_is_not_run_again_elsewhere(client: OpenAI, upstream: FakeProvider) -> None:
    video = client.videos.create_and_poll(model="videos-local-first", prompt="please fail here", seconds="1")
    assert video.status == "failed" and video.error is not None and video.error.code == "upstream_job_failed"
    assert video.model == "remote-video"  # the provider took the job (and may bill it): no second model


def test_a_remix_is_a_new_job_on_the_provider(client: OpenAI, upstream: FakeProvider) -> None:
    source = client.videos.create_and_poll(model="remote-video", prompt="a blue dusk", seconds="1", size="64x48")
    remix = client.videos.remix(source.id, prompt="a blue dusk, remixed")
    remix = client.videos.poll(remix.id, poll_interval_ms=200)
    assert remix.status == "completed" and remix.model == "remote-video"
    assert _submits(upstream, "a blue dusk, remixed") == 1  # submitted anew, not the source's job polled again
