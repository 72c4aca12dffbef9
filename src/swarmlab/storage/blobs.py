"""A content-addressed blob store over fsspec.

Blobs are immutable and named by the sha256 of their bytes (`<root>/ab/abcdef...`), so the
same content is stored once, a name can never point at different bytes, and any fsspec URL
works (`file://./swarmlab-data/blobs` by default, `s3://bucket/prefix`, `memory://...`).
A blob is written under a temporary name and moved into place, so a reader never sees half a
blob; on local disks the bytes are fsynced first, so an acknowledged upload survives a crash.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobNotFound(KeyError):
    """No blob has this sha256 in the store."""


class BlobStore:
    """Put and get immutable blobs by sha256 under one fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        self._local = isinstance(self.fs, LocalFileSystem)
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, sha256: str) -> str:
        """Where the blob named `sha256` lives inside the store."""
        if not SHA256_RE.fullmatch(sha256):
            raise ValueError(f"{sha256!r} is not a lowercase hex sha256 digest")
        return f"{self.root}/{sha256[:2]}/{sha256}"

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its sha256."""
        return self.put_chunks([data])

    def put_chunks(self, chunks: Iterable[bytes]) -> str:
        """Store a stream of chunks without holding it in memory; return its sha256."""
        digest = hashlib.sha256()
        staging = f"{self.root}/tmp/{uuid.uuid4().hex}"
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        with self.fs.open(staging, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            if self._local:
                out.flush()
                os.fsync(out.fileno())
        sha256 = digest.hexdigest()
        self._move_into_place(staging, sha256)
        return sha256

    def _move_into_place(self, staging: str, sha256: str) -> None:
        target = self.path(sha256)
        if self.fs.exists(target):
            self.fs.rm(staging)
            return
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        if self._local:
            Path(staging).replace(target)
            _fsync_dir(Path(target).parent)
        else:
            self.fs.mv(staging, target)

    def exists(self, sha256: str) -> bool:
        """Whether the store holds this blob."""
        return bool(self.fs.exists(self.path(sha256)))

    def get(self, sha256: str) -> bytes:
        """The blob's bytes; BlobNotFound if the store does not hold it."""
        try:
            return bytes(self.fs.cat_file(self.path(sha256)))
        except FileNotFoundError as exc:
            raise BlobNotFound(sha256) from exc


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: fsync the directory that holds the new name."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
