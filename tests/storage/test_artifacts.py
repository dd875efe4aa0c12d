from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mmserve.errors import NotFoundError, PermissionDeniedError
from mmserve.storage.artifacts import ArtifactMeta, ArtifactStore
from mmserve.storage.signing import UrlSigner


def test_put_get_delete(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    art = store.put_bytes(b"hello", ArtifactMeta("text/plain", filename="h.txt", owner="k1", kind="test"))
    got, path = store.get(art.id)
    assert got == art and path.read_bytes() == b"hello" and got.size == 5
    assert not list(tmp_path.glob("*/*.tmp"))
    assert store.delete(art.id) is True
    with pytest.raises(NotFoundError):
        store.get(art.id)


def test_put_file_moves(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    src = tmp_path / "video.mp4"
    src.write_bytes(b"\x00" * 100)
    art = store.put_file(src, ArtifactMeta("video/mp4"))
    assert not src.exists() and store.get(art.id)[1].stat().st_size == 100


@pytest.mark.parametrize("aid", ["../secret", "art_../../x", "art_ABC", "", "x" * 100, "art_/etc/passwd"])
def test_ids_cannot_escape(tmp_path: Path, aid: str) -> None:
    with pytest.raises(NotFoundError):
        ArtifactStore(tmp_path).get(aid)


@pytest.mark.parametrize("aid", ["ABSOLUTE", "../../../victim", "art_../../victim", "xx/../../victim"])
def test_delete_cannot_escape(tmp_path: Path, aid: str) -> None:
    root = tmp_path / "store" / "artifacts"
    victim = tmp_path / "victim"
    victim.write_text("not an artifact")
    (tmp_path / "victim.json").write_text("{}")
    store = ArtifactStore(root)
    assert store.delete(str(victim) if aid == "ABSOLUTE" else aid) is False  # an absolute id replaced the root
    assert victim.exists() and (tmp_path / "victim.json").exists()


@pytest.mark.parametrize("fail", ["data", "sidecar"])
def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    store = ArtifactStore(tmp_path, default_ttl_s=60)
    full = OSError(28, "No space left on device")

    def write_text(self: Path, *a: object, **k: object) -> int:
        raise full

    monkeypatch.setattr(Path, "write_text" if fail == "sidecar" else "write_bytes", write_text)
    with pytest.raises(OSError, match="No space"):
        store.put_bytes(b"an image", ArtifactMeta("image/png"))
    src = tmp_path / "video.mp4"
    monkeypatch.undo()
    src.write_bytes(b"a video")
    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(OSError, match="No space"):
        store.put_file(src, ArtifactMeta("video/mp4"))
    monkeypatch.undo()
    # a data file without its sidecar would never be found, served or cleaned up
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p != src] == []


def test_expiry_and_cleanup(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, default_ttl_s=60)
    old = store.put_bytes(b"1", ArtifactMeta("text/plain"))
    keep = store.put_bytes(b"2", ArtifactMeta("text/plain", ttl_s=0))  # never expires
    meta = next(tmp_path.glob(f"*/{old.id}.json"))
    data = json.loads(meta.read_text())
    data["expires_at"] = time.time() - 1
    meta.write_text(json.dumps(data))
    with pytest.raises(NotFoundError, match="expired"):
        store.get(old.id)
    assert store.cleanup_expired() == 1
    assert not any(tmp_path.glob(f"*/{old.id}*"))
    assert store.get(keep.id)[0].expires_at is None


def test_signer_verifies_and_refuses_forgeries() -> None:
    signer = UrlSigner(b"k" * 32)
    q = dict(p.split("=") for p in signer.query("art_1", 60).split("&"))
    signer.verify("art_1", q["expires"], q["signature"])
    with pytest.raises(PermissionDeniedError):
        signer.verify("art_2", q["expires"], q["signature"])  # another file
    with pytest.raises(PermissionDeniedError):
        signer.verify("art_1", str(int(q["expires"]) + 1000), q["signature"])  # extended expiry
    with pytest.raises(PermissionDeniedError):
        UrlSigner(b"x" * 32).verify("art_1", q["expires"], q["signature"])  # other key
    past = int(time.time()) - 5
    with pytest.raises(PermissionDeniedError, match="expired"):
        signer.verify("art_1", str(past), signer.signature("art_1", past))
    with pytest.raises(PermissionDeniedError):
        signer.verify("art_1", None, None)
