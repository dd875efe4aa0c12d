"""A local-directory artifact store: files plus a JSON sidecar of metadata, with expiry.

Each artifact is ``<root>/<id[:2]>/<id>`` with ``<id>.json`` beside it. Writes are atomic
(temp file + rename) so a crash never leaves a half file that looks complete. Files are
never exposed by path: clients get signed URLs (:mod:`mmserve.storage.signing`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mmserve.errors import NotFoundError

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass
class Artifact:
    id: str
    content_type: str
    size: int
    created_at: float
    expires_at: float | None
    filename: str
    owner: str | None = None
    kind: str = "file"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at


@dataclass
class ArtifactMeta:
    """What the writer says about a new artifact. ``ttl_s``: None = the store's default, <= 0 = never."""

    content_type: str
    filename: str | None = None
    ttl_s: float | None = None
    owner: str | None = None
    kind: str = "file"


class ArtifactStore:
    def __init__(self, root: Path, *, default_ttl_s: float | None = 24 * 3600) -> None:
        self.root = root
        self.default_ttl_s = default_ttl_s
        root.mkdir(parents=True, exist_ok=True)

    # -------------------------------------------------------------- write

    def put_bytes(self, data: bytes, meta: ArtifactMeta) -> Artifact:
        aid, path = self._new_path()
        try:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            return self._commit(aid, tmp, path, meta)
        except BaseException:
            self._discard(path)
            raise

    def put_file(self, src: Path, meta: ArtifactMeta, *, move: bool = True) -> Artifact:
        """Adopt a finished file (e.g. an encoded video written elsewhere in the data dir)."""
        aid, path = self._new_path()
        try:
            tmp = path.with_name(path.name + ".tmp")
            if move:
                shutil.move(src, tmp)
            else:
                shutil.copyfile(src, tmp)
            return self._commit(aid, tmp, path, meta)
        except BaseException:
            self._discard(path)
            raise

    def _commit(self, aid: str, tmp: Path, path: Path, meta: ArtifactMeta) -> Artifact:
        ttl = self.default_ttl_s if meta.ttl_s is None else meta.ttl_s
        now = time.time()
        art = Artifact(
            id=aid,
            content_type=meta.content_type,
            size=tmp.stat().st_size,
            created_at=now,
            expires_at=(now + ttl) if ttl and ttl > 0 else None,
            filename=meta.filename or aid,
            owner=meta.owner,
            kind=meta.kind,
        )
        os.replace(tmp, path)
        meta_tmp = path.with_name(aid + ".json.tmp")
        meta_tmp.write_text(json.dumps(asdict(art)))
        os.replace(meta_tmp, path.with_name(aid + ".json"))
        return art

    @staticmethod
    def _discard(path: Path) -> None:
        """A write that failed (disk full...) leaves nothing: a file without its sidecar is never cleaned up."""
        for leftover in (path.name + ".tmp", path.name, path.name + ".json.tmp", path.name + ".json"):
            path.with_name(leftover).unlink(missing_ok=True)

    def _new_path(self) -> tuple[str, Path]:
        aid = "art_" + secrets.token_hex(12)
        folder = self.root / aid[4:6]
        folder.mkdir(parents=True, exist_ok=True)
        return aid, folder / aid

    def _path(self, aid: str) -> Path:
        """Where artifact ``aid`` lives; 404 for anything that is not an artifact id (no path escapes)."""
        if not aid.startswith("art_") or not set(aid) <= _ID_CHARS or len(aid) > 64:
            raise NotFoundError("No such file.")
        return self.root / aid[4:6] / aid

    # -------------------------------------------------------------- read

    def get(self, aid: str) -> tuple[Artifact, Path]:
        """The artifact and its file; 404 if unknown, removed or expired."""
        path = self._path(aid)
        meta = path.with_name(aid + ".json")
        try:
            art = Artifact(**json.loads(meta.read_text()))
        except (OSError, ValueError, TypeError):
            raise NotFoundError("No such file.") from None
        if art.expired or not path.exists():
            raise NotFoundError("The file has expired.", code="expired")
        return art, path

    def delete(self, aid: str) -> bool:
        try:
            path = self._path(aid)
        except NotFoundError:
            return False
        found = path.exists()
        path.unlink(missing_ok=True)
        path.with_name(aid + ".json").unlink(missing_ok=True)
        return found

    def cleanup_expired(self) -> int:
        """Delete expired artifacts and stale temp files; returns how many artifacts were removed."""
        removed = 0
        now = time.time()
        for meta in self.root.glob("*/art_*.json"):
            try:
                expires = json.loads(meta.read_text()).get("expires_at")
            except (OSError, ValueError):
                continue
            if expires is not None and expires <= now:
                meta.with_suffix("").unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                removed += 1
        for tmp in self.root.glob("*/*.tmp"):
            if now - tmp.stat().st_mtime > 3600:
                tmp.unlink(missing_ok=True)
        return removed
