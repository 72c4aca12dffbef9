"""The content-addressed blob store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from swarmlab.storage import BlobNotFound, BlobStore


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "file":
        return BlobStore(f"file://{tmp_path / 'blobs'}")
    return BlobStore(f"memory://blobs-{tmp_path.name}")


def test_put_returns_the_sha256_and_get_returns_the_bytes(store: BlobStore) -> None:
    data = b"hello swarm"
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.exists(sha) and store.get(sha) == data


def test_same_content_is_stored_once(store: BlobStore) -> None:
    first = store.put_chunks([b"ab", b"c"])
    assert store.put(b"abc") == first
    assert store.fs.find(store.root + "/" + first[:2]) == [store.path(first)]


def test_missing_blob_and_malformed_name(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        store.path("../etc/passwd")


def test_no_staging_files_are_left_behind(tmp_path: Path) -> None:
    store = BlobStore(f"file://{tmp_path}")
    store.put(b"x")
    store.put(b"x")
    assert list((tmp_path / "tmp").iterdir()) == []
