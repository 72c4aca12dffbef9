"""Submission bundles: pack a directory into a tar.gz, address it by sha256, extract it safely.

Packing is deterministic (sorted names, zeroed times and owners), so the same directory always
gives the same bytes and the same content address. Extraction treats the archive as hostile: it
streams members one at a time, refuses absolute paths, ``..``, links that leave the tree, device
files and FIFOs, and stops a decompression bomb by capping the member count and the bytes
actually written, whatever the headers claim.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
TAR_OVERHEAD = 3 * 512  # header blocks a member may add to the stream (PAX header + header + pad)


class BundleError(Exception):
    """Base of every bundle failure; the message says what to change in the submission."""


class UnsafeMember(BundleError):
    """An archive member would write outside the tree, or is a device, FIFO or escaping link."""


class BundleTooLarge(BundleError):
    """The archive expands past the size or member-count cap."""


class CorruptBundle(BundleError):
    """The bytes are not a readable tar.gz."""


@dataclass(frozen=True)
class ExtractLimits:
    """Caps applied while extracting; the defaults suit a model-serving entry's source."""

    max_total_bytes: int = 2 * 1024**3
    max_members: int = 10_000


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o755 if info.mode & 0o100 or info.isdir() else 0o644
    return info


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield base / name


def pack_directory(source: Path, out: BinaryIO) -> None:
    """Write ``source`` as a deterministic tar.gz to ``out`` (relative names, no owners, no times).

    Symlinks are stored as links; ``extract`` decides later whether they stay inside the tree.
    """
    if not source.is_dir():
        raise BundleError(f"{source} is not a directory: give the folder holding manifest.json")
    with (
        gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in _walk(source):
            rel = path.relative_to(source).as_posix()
            tar.add(path, arcname=rel, recursive=False, filter=_normalised)


def pack_to_file(source: Path, dest: Path) -> str:
    """Pack ``source`` into ``dest`` and return its content address (hex sha256)."""
    with dest.open("wb") as handle:
        pack_directory(source, handle)
    return sha256_file(dest)


def _check_name(name: str) -> str:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMember(f"{name!r} is an absolute path: archive paths must be relative")
    parts = name.split("/")
    if ".." in parts:
        raise UnsafeMember(f"{name!r} contains '..': archive paths must stay inside the bundle")
    clean = posixpath.normpath(name)
    if clean in (".", ""):
        raise UnsafeMember(f"{name!r} names the bundle root itself")
    return clean


def _check_link(member: tarfile.TarInfo, clean: str) -> str:
    """Where a link points, relative to the root; refuse targets that leave the tree."""
    target = member.linkname
    if target.startswith("/"):
        raise UnsafeMember(f"link {clean!r} -> {target!r} is absolute: use a relative link")
    base = posixpath.dirname(clean) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeMember(f"link {clean!r} -> {target!r} points outside the bundle")
    return resolved


def _check_kind(member: tarfile.TarInfo, clean: str) -> None:
    if member.ischr() or member.isblk():
        raise UnsafeMember(f"{clean!r} is a device file: bundles hold only files, folders, links")
    if member.isfifo():
        raise UnsafeMember(f"{clean!r} is a FIFO: bundles hold only files, folders and links")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeMember(f"{clean!r} has an unsupported type: remove it from the submission")


def _inside(dest: Path, path: Path) -> Path:
    """Resolve ``path`` through any links already extracted; it must stay in ``dest``."""
    resolved = path.resolve()
    if not resolved.is_relative_to(dest):
        raise UnsafeMember(f"{path.relative_to(dest)} resolves outside the bundle through a link")
    return resolved


class _Extractor:
    """Writes validated members one at a time, counting members and bytes against the caps."""

    def __init__(self, tar: tarfile.TarFile, dest: Path, limits: ExtractLimits) -> None:
        self.tar = tar
        self.dest = dest
        self.limits = limits
        self.members = 0
        self.written = 0

    def member(self, member: tarfile.TarInfo) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise BundleTooLarge(
                f"more than {self.limits.max_members} members: trim the submission"
            )
        clean = _check_name(member.name)
        _check_kind(member, clean)
        target = self.dest / clean
        _inside(self.dest, target.parent)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
        elif member.issym():
            _check_link(member, clean)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(member.linkname)
            _inside(self.dest, target)
        elif member.islnk():
            source = _inside(self.dest, self.dest / _check_link(member, clean))
            target.parent.mkdir(parents=True, exist_ok=True)
            self._copy(source, target, member)
        else:
            self._write(member, target)

    def sweep_links(self) -> None:
        """Links checked one by one can still combine into an escape; check them all at the end."""
        for path in _walk(self.dest):
            if path.is_symlink():
                _inside(self.dest, path)

    def _budget(self, size: int, name: str) -> None:
        self.written += size
        if self.written > self.limits.max_total_bytes:
            raise BundleTooLarge(
                f"{name!r} takes the bundle past {self.limits.max_total_bytes} bytes unpacked: "
                "leave weights and data out of the submission"
            )

    def _write(self, member: tarfile.TarInfo, target: Path) -> None:
        source = self.tar.extractfile(member)
        if source is None:
            raise CorruptBundle(f"{member.name!r} has no data: re-pack the submission")
        target.parent.mkdir(parents=True, exist_ok=True)
        with source, target.open("xb") as out:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                self._budget(len(chunk), member.name)
                out.write(chunk)
        target.chmod(0o755 if member.mode & 0o100 else 0o644)

    def _copy(self, source: Path, target: Path, member: tarfile.TarInfo) -> None:
        if not source.is_file():
            raise UnsafeMember(f"hard link {member.name!r} does not point at an earlier file")
        self._budget(source.stat().st_size, member.name)
        shutil.copyfile(source, target)


class _CappedReader(io.RawIOBase):
    """Reads the decompressed stream, failing once it passes ``cap`` bytes.

    Member sizes are checked as they are written, but tar headers (a PAX header can claim any
    size) are read before that; this caps everything the decompressor produces.
    """

    def __init__(self, inner: io.BufferedIOBase, cap: int) -> None:
        super().__init__()
        self.inner = inner
        self.remaining = cap

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = self.remaining + 1 if size < 0 else min(size, self.remaining + 1)
        data = self.inner.read(want)
        self.remaining -= len(data)
        if self.remaining < 0:
            raise BundleTooLarge("the archive expands past its size cap: is it a compression bomb?")
        return data


def extract(archive: BinaryIO, dest: Path, limits: ExtractLimits | None = None) -> None:
    """Extract a tar.gz stream into the empty or missing folder ``dest``, refusing anything unsafe.

    On any error the partly written folder is removed, so callers never see half a bundle.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BundleError(f"{dest} is not empty: extract into a fresh folder")
    root = dest.resolve()
    limits = limits or ExtractLimits()
    stream = _CappedReader(
        gzip.GzipFile(fileobj=archive, mode="rb"),
        limits.max_total_bytes + limits.max_members * TAR_OVERHEAD + tarfile.RECORDSIZE,
    )
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            extractor = _Extractor(tar, root, limits)
            for member in tar:
                extractor.member(member)
            extractor.sweep_links()
    except BundleError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise CorruptBundle(
            f"not a readable tar.gz ({exc}): pack it with `swarmlab submit`"
        ) from exc


def extract_bytes(data: bytes, dest: Path, limits: ExtractLimits | None = None) -> None:
    """``extract`` for an archive held in memory."""
    extract(io.BytesIO(data), dest, limits)
