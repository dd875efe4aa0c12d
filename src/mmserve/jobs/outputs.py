"""What a finished video job leaves behind (encoded files in the artifact store) and how a failure reads.

Both are small and blocking-free to reason about: :func:`store_outputs` runs in a worker
thread; :func:`describe_failure` turns any exception into the ``(code, message)`` a client
sees on the job — never a traceback or a library's message (those go to the server log).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmserve.errors import MMServeError
from mmserve.jobs.store import VideoJob
from mmserve.media.video.encode import encode_mp4, spritesheet_jpeg, thumbnail_webp
from mmserve.storage.artifacts import ArtifactMeta, ArtifactStore


@dataclass
class StoredOutputs:
    video: str
    thumbnail: str
    spritesheet: str
    video_seconds: float
    expires_at: float | None

    @property
    def ids(self) -> list[str]:
        return [self.video, self.thumbnail, self.spritesheet]


def store_outputs(
    job: VideoJob, frames: Any, *, artifacts: ArtifactStore, tmp_dir: Path, ttl_s: float
) -> StoredOutputs:
    """Encode the MP4 (at the job's size and fps), thumbnail and spritesheet; store all three."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{job.id}-{secrets.token_hex(4)}.mp4"
    stored: list[str] = []
    try:
        info = encode_mp4(frames, job.fps, tmp, width=job.width, height=job.height)

        def meta(content_type: str, suffix: str, kind: str) -> ArtifactMeta:
            return ArtifactMeta(content_type, filename=f"{job.id}{suffix}", ttl_s=ttl_s, owner=job.owner, kind=kind)

        video = artifacts.put_file(tmp, meta("video/mp4", ".mp4", "video"))
        stored.append(video.id)
        thumb = artifacts.put_bytes(
            thumbnail_webp(frames, width=job.width, height=job.height), meta("image/webp", ".webp", "video-thumbnail")
        )
        stored.append(thumb.id)
        sheet = artifacts.put_bytes(
            spritesheet_jpeg(frames), meta("image/jpeg", "-spritesheet.jpg", "video-spritesheet")
        )
        stored.append(sheet.id)
    except BaseException:
        tmp.unlink(missing_ok=True)
        delete_artifacts(artifacts, stored)
        raise
    return StoredOutputs(video.id, thumb.id, sheet.id, info.duration, video.expires_at)


def delete_artifacts(artifacts: ArtifactStore, ids: list[str]) -> None:
    for aid in ids:
        artifacts.delete(aid)


FRIENDLY = {
    "out_of_memory": "The model ran out of memory making this video; ask for a smaller size or fewer seconds.",
    "engine_error": "The model failed while generating this video; the server log has the details.",
}


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """``(code, message)`` for the job's ``error``: public messages as they are, the rest generic."""
    if isinstance(exc, MMServeError):
        code = exc.code or "generation_failed"
        if exc.public:
            return code, exc.message
        return code, FRIENDLY.get(code, FRIENDLY["engine_error"])
    return "internal_error", "The server failed while processing this video; the server log has the details."
