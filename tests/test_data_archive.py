"""Safe archive extraction: malicious tars and zips are refused before anything is written."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from lungspread.data.archive import list_members, safe_extract
from lungspread.errors import InputError, OutputError


def make_tar(path: Path, entries: list[tuple[str, str, bytes | str]], mode: str = "w") -> Path:
    """entries: (name, kind, data) with kind file/dir/symlink/hardlink/chr/fifo; data is the
    content (file) or the link target."""
    with tarfile.open(path, mode) as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                info.mode = 0o6755 if name.endswith(".sh") else 0o644
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            if kind in ("symlink", "hardlink"):
                assert isinstance(data, str)
                info.linkname = data
            tf.addfile(info)
    return path


GOOD = [
    ("Task06_Lung", "dir", b""),
    ("Task06_Lung/dataset.json", "file", b"{}"),
    ("Task06_Lung/imagesTr/lung_001.nii.gz", "file", b"x" * 5000),
    ("Task06_Lung/imagesTr/._lung_001.nii.gz", "file", b"apple double"),
    ("./Task06_Lung/run.sh", "file", b"#!/bin/sh\n"),
]


def test_extracts_a_good_archive(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "a.tar.gz", GOOD, "w:gz")
    dest = tmp_path / "out"
    created = safe_extract(tar, dest)
    assert created == [dest / "Task06_Lung"]
    assert (dest / "Task06_Lung" / "dataset.json").read_bytes() == b"{}"
    assert (dest / "Task06_Lung/imagesTr/lung_001.nii.gz").stat().st_size == 5000
    assert not (dest / "Task06_Lung/imagesTr/._lung_001.nii.gz").exists()  # AppleDouble skipped
    mode = (dest / "Task06_Lung" / "run.sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID) and mode & 0o100
    assert sorted(p.name for p in dest.iterdir()) == ["Task06_Lung"]  # no staging left
    with pytest.raises(OutputError, match="'Task06_Lung' already exists"):
        safe_extract(tar, dest)
    safe_extract(tar, dest, overwrite=True)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../evil.txt", "file", b"x")], "'..' path component refused"),
        ([("ok/../../evil.txt", "file", b"x")], "'..' path component refused"),
        ([("/tmp/evil.txt", "file", b"x")], "absolute path refused"),
        ([("C:\\evil.txt", "file", b"x")], "absolute path refused"),
        ([("link", "symlink", "/etc/passwd")], "points outside the destination"),
        ([("link", "symlink", "../../outside")], "points outside the destination"),
        ([("d", "dir", b""), ("d/link", "symlink", "../x")], "points outside the destination"),
        ([("link", "symlink", "inside.txt")], "symbolic links are never extracted"),
        ([("hl", "hardlink", "/etc/passwd")], "hard link to '/etc/passwd' points outside"),
        ([("hl", "hardlink", "../outside")], "hard link to '../outside' points outside"),
        (
            [("hl", "hardlink", "not_yet.txt"), ("not_yet.txt", "file", b"x")],
            "not a file extracted earlier",
        ),
        ([("dev", "chr", b"")], "device file refused"),
        ([("pipe", "fifo", b"")], "FIFO refused"),
    ],
)
def test_refuses_malicious_tars_and_writes_nothing(
    tmp_path: Path, entries: list[tuple[str, str, bytes | str]], message: str
) -> None:
    tar = make_tar(tmp_path / "evil.tar", [("first.txt", "file", b"ok"), *entries])
    dest = tmp_path / "sub" / "out"
    with pytest.raises(InputError, match=message) as info:
        safe_extract(tar, dest)
    assert "evil.tar" in str(info.value)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()
    assert not dest.exists() or list(dest.iterdir()) == []  # nothing written, not even first.txt


def test_hardlink_inside_is_copied_not_linked(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "h.tar", [("a.txt", "file", b"data"), ("b.txt", "hardlink", "a.txt")])
    safe_extract(tar, tmp_path / "out")
    a, b = tmp_path / "out" / "a.txt", tmp_path / "out" / "b.txt"
    assert b.read_bytes() == b"data"
    assert os.stat(a).st_ino != os.stat(b).st_ino and not b.is_symlink()


def test_does_not_write_through_a_symlink_already_in_the_destination(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "Task06_Lung").symlink_to(outside)
    tar = make_tar(tmp_path / "a.tar", [("Task06_Lung/x.txt", "file", b"x")])
    with pytest.raises(OutputError, match="already exists"):
        safe_extract(tar, dest)
    safe_extract(tar, dest, overwrite=True)  # replaces the link itself
    assert list(outside.iterdir()) == []
    assert not (dest / "Task06_Lung").is_symlink()
    assert (dest / "Task06_Lung" / "x.txt").read_bytes() == b"x"


def test_truncated_and_corrupt_archives(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "a.tar", [("big.bin", "file", os.urandom(200_000))])
    data = tar.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:100_000])
    with pytest.raises(InputError, match="truncated"):
        safe_extract(cut, tmp_path / "o1")
    assert not (tmp_path / "o1" / "big.bin").exists()
    gz = make_tar(tmp_path / "a.tar.gz", [("big.bin", "file", os.urandom(200_000))], "w:gz")
    cutgz = tmp_path / "cut.tar.gz"
    cutgz.write_bytes(gz.read_bytes()[:50_000])
    with pytest.raises(InputError, match="truncated or corrupt"):
        safe_extract(cutgz, tmp_path / "o2")
    assert not (tmp_path / "o2").exists() or list((tmp_path / "o2").iterdir()) == []
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(InputError, match="not a readable tar or zip archive"):
        safe_extract(junk, tmp_path / "o3")
    with pytest.raises(InputError, match="archive not found"):
        safe_extract(tmp_path / "nope.tar", tmp_path / "o4")


def test_zip_slip_refused_and_good_zip_extracted(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("ok.txt", "ok")
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(InputError, match=r"'\.\.' path component refused"):
        safe_extract(evil, tmp_path / "out")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("d/ok.txt", "ok")
    assert list_members(good) == ["d/ok.txt"]
    safe_extract(good, tmp_path / "out2")
    assert (tmp_path / "out2" / "d" / "ok.txt").read_text() == "ok"


def test_size_limit(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "a.tar", [("big.bin", "file", b"0" * 10_000)])
    with pytest.raises(OutputError, match="more than the allowed 1000"):
        safe_extract(tar, tmp_path / "out", max_total_bytes=1000)


def test_zip_symlink_refused(tmp_path: Path) -> None:
    evil = tmp_path / "link.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic links are never extracted"):
        safe_extract(evil, tmp_path / "out")
    assert not (tmp_path / "out" / "link").exists()
