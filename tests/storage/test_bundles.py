"""Bundles pack deterministically and extract safely; every malicious archive is refused."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmlab.storage.bundles import (
    BundleError,
    BundleTooLarge,
    CorruptBundle,
    ExtractLimits,
    UnsafeMember,
    extract_bytes,
    pack_directory,
    pack_to_file,
)


def make_entry(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "manifest.json").write_text('{"name": "demo"}')
    (root / "serve.py").write_text("print('serving')\n")
    (root / "serve.py").chmod(0o755)
    (root / "pkg" / "model.py").write_text("X = 1\n")
    (root / "pkg" / "alias.py").symlink_to("model.py")
    return root


def packed(root: Path) -> bytes:
    out = io.BytesIO()
    pack_directory(root, out)
    return out.getvalue()


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar.gz holding exactly these members, however hostile."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_round_trip_keeps_files_links_and_exec_bits(tmp_path: Path) -> None:
    src = make_entry(tmp_path / "src")
    dest = tmp_path / "out"
    extract_bytes(packed(src), dest)
    assert (dest / "manifest.json").read_text() == '{"name": "demo"}'
    assert (dest / "pkg" / "alias.py").is_symlink()
    assert (dest / "pkg" / "alias.py").read_text() == "X = 1\n"
    assert (dest / "serve.py").stat().st_mode & 0o100
    assert not (dest / "manifest.json").stat().st_mode & 0o100


def test_packing_is_deterministic_across_copies(tmp_path: Path) -> None:
    a = make_entry(tmp_path / "a")
    b = make_entry(tmp_path / "b")
    (b / "serve.py").touch()  # a newer mtime must not change the address
    assert pack_to_file(a, tmp_path / "a.tgz") == pack_to_file(b, tmp_path / "b.tar.gz")


def test_packing_changes_with_content(tmp_path: Path) -> None:
    a = make_entry(tmp_path / "a")
    before = packed(a)
    (a / "serve.py").write_text("print('faster')\n")
    assert packed(a) != before


def test_pack_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(BundleError, match="not a directory"):
        pack_directory(tmp_path / "f", io.BytesIO())


HOSTILE: dict[str, tuple[Callable[[], bytes], type[BundleError], str]] = {
    "absolute path": (lambda: archive((member("/etc/evil"), b"x")), UnsafeMember, "absolute"),
    "dot-dot": (lambda: archive((member("a/../../evil"), b"x")), UnsafeMember, "'..'"),
    "symlink out": (
        lambda: archive((member("up", tarfile.SYMTYPE, "../../etc"), None)),
        UnsafeMember,
        "outside",
    ),
    "absolute symlink": (
        lambda: archive((member("pw", tarfile.SYMTYPE, "/etc/passwd"), None)),
        UnsafeMember,
        "absolute",
    ),
    "hardlink out": (
        lambda: archive((member("pw", tarfile.LNKTYPE, "../etc/passwd"), None)),
        UnsafeMember,
        "outside",
    ),
    "write through symlinked dir": (
        lambda: archive(
            (member("d", tarfile.SYMTYPE, "."), None),
            (member("d/e", tarfile.SYMTYPE, ".."), None),
        ),
        UnsafeMember,
        "outside",
    ),
    "char device": (
        lambda: archive((member("tty", tarfile.CHRTYPE), None)),
        UnsafeMember,
        "device",
    ),
    "block device": (
        lambda: archive((member("sda", tarfile.BLKTYPE), None)),
        UnsafeMember,
        "device",
    ),
    "fifo": (lambda: archive((member("pipe", tarfile.FIFOTYPE), None)), UnsafeMember, "FIFO"),
    "too many members": (
        lambda: archive(*[(member(f"f{i}"), b"") for i in range(6)]),
        BundleTooLarge,
        "members",
    ),
    "bomb": (lambda: archive((member("zeros"), bytes(4096))), BundleTooLarge, "past 1024"),
    "not gzip": (lambda: b"plain text, not an archive", CorruptBundle, "tar.gz"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_leave_nothing(tmp_path: Path, case: str) -> None:
    build, error, words = HOSTILE[case]
    dest = tmp_path / "out"
    with pytest.raises(error, match=words):
        extract_bytes(build(), dest, ExtractLimits(max_total_bytes=1024, max_members=5))
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_link_combination_escaping_later_is_caught(tmp_path: Path) -> None:
    # "a" -> "q/.." looks inside; once "q" -> "." exists, "a" resolves to the parent
    data = archive(
        (member("a", tarfile.SYMTYPE, "q/.."), None),
        (member("q", tarfile.SYMTYPE, "."), None),
    )
    with pytest.raises(UnsafeMember, match="outside"):
        extract_bytes(data, tmp_path / "out")


def test_header_lies_are_caught_by_the_stream_cap(tmp_path: Path) -> None:
    huge = tarfile.TarInfo("claims-small")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        huge.pax_headers = {"comment": "z" * 200_000}
        huge.size = 0
        tar.addfile(huge)
    with pytest.raises(BundleTooLarge):
        extract_bytes(gzip.compress(raw.getvalue()), tmp_path / "out", ExtractLimits(1024, 5))


def test_hardlink_inside_is_copied(tmp_path: Path) -> None:
    data = archive((member("a"), b"hello"), (member("b", tarfile.LNKTYPE, "a"), None))
    extract_bytes(data, tmp_path / "out")
    assert (tmp_path / "out" / "b").read_bytes() == b"hello"


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    data = archive((member("a"), b"one"), (member("a"), b"two"))
    with pytest.raises(CorruptBundle):
        extract_bytes(data, tmp_path / "out")


def test_extract_refuses_a_folder_with_content(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        extract_bytes(archive((member("a"), b"x")), tmp_path)
    assert (tmp_path / "keep").read_text() == "mine"
