"""Dataset download against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from lungspread.cli.app import main
from lungspread.data.download import SOURCES, download_dataset, download_file
from lungspread.errors import InputError


@dataclass
class Served:
    files: dict[str, bytes] = field(default_factory=dict)
    truncate_at: dict[str, int] = field(default_factory=dict)  # close after N body bytes
    ignore_range: set[str] = field(default_factory=set)
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        s = self.served
        rng = self.headers.get("Range")
        s.requests.append((self.path, rng))
        data = s.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if rng and self.path not in s.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = s.truncate_at.get(self.path)
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True


@pytest.fixture()
def server() -> Iterator[tuple[str, Served]]:
    served = Served()
    handler = type("H", (_Handler,), {"served": served})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def task_tar(folder: str = "Task06_Lung") -> bytes:
    """A small MSD archive (one tiny case) built in memory."""
    import nibabel as nib

    arr = np.zeros((8, 8, 4), np.int16)
    lab = np.zeros((8, 8, 4), np.uint8)
    lab[2:4, 2:4, 1:3] = 1
    files: dict[str, bytes] = {}
    for name, a in (("imagesTr/lung_001.nii.gz", arr), ("labelsTr/lung_001.nii.gz", lab)):
        img = nib.Nifti1Image(a, np.diag([0.8, 0.8, 2.5, 1.0]))
        files[name] = img.to_bytes()
    import gzip

    files = {k: gzip.compress(v) for k, v in files.items()}
    files["dataset.json"] = json.dumps(
        {
            "name": "Lung",
            "modality": {"0": "CT"},
            "labels": {"0": "background", "1": "cancer"},
            "numTraining": 1,
            "training": [
                {"image": "./imagesTr/lung_001.nii.gz", "label": "./labelsTr/lung_001.nii.gz"}
            ],
            "test": [],
        }
    ).encode()
    files["imagesTr/._lung_001.nii.gz"] = b"\x00\x05\x16\x07 apple double"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue() + b"\0" * 3000  # padding so truncation tests have room


PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes


def test_plain_download_verifies(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, s = server
    s.files["/f.bin"] = PAYLOAD
    seen: list[int] = []
    out = download_file(
        f"{url}/f.bin", tmp_path / "f.bin", md5=md5(PAYLOAD), progress=lambda d, t: seen.append(d)
    )
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "f.bin.part").exists()
    assert seen[-1] == len(PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    # Already there and verified: no request at all.
    n = len(s.requests)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", sha256=sha)
    assert len(s.requests) == n


def test_corrupted_download_is_refused_and_deleted(
    tmp_path: Path, server: tuple[str, Served]
) -> None:
    url, s = server
    s.files["/f.bin"] = PAYLOAD[:-1] + b"X"  # one byte differs
    with pytest.raises(
        InputError, match=r"MD5 checksum mismatch: expected .*; the corrupted download was deleted"
    ):
        download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=md5(PAYLOAD))
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_truncated_download_keeps_part_and_resumes(
    tmp_path: Path, server: tuple[str, Served]
) -> None:
    url, s = server
    s.files["/f.bin"] = PAYLOAD
    s.truncate_at["/f.bin"] = 300_000
    with pytest.raises(
        InputError,
        match=r"stopped at 300000 of 1024000 bytes .* run the same command again to resume",
    ):
        download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=md5(PAYLOAD))
    part = tmp_path / "f.bin.part"
    assert part.read_bytes() == PAYLOAD[:300_000]
    assert not (tmp_path / "f.bin").exists()
    del s.truncate_at["/f.bin"]
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=md5(PAYLOAD))
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert s.requests[-1] == ("/f.bin", "bytes=300000-")  # resumed, not restarted


def test_resume_from_existing_partial_file(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, s = server
    s.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:777_777])
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=md5(PAYLOAD))
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert s.requests == [("/f.bin", "bytes=777777-")]


def test_complete_partial_file_gets_416_and_is_verified(
    tmp_path: Path, server: tuple[str, Served]
) -> None:
    url, s = server
    s.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=md5(PAYLOAD))
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, s = server
    s.files["/f.bin"] = PAYLOAD
    s.ignore_range.add("/f.bin")
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    download_file(f"{url}/f.bin", tmp_path / "f.bin", md5=md5(PAYLOAD))
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_http_errors_and_bad_urls(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, _ = server
    with pytest.raises(InputError, match="HTTP 404"):
        download_file(f"{url}/missing.tar", tmp_path / "x.tar", md5="0" * 32)
    with pytest.raises(InputError, match="only http:// and https://"):
        download_file("file:///etc/passwd", tmp_path / "x.tar")
    with pytest.raises(InputError, match="MD5 must be 32 hexadecimal digits"):
        download_file(f"{url}/x", tmp_path / "x.tar", md5="abc")
    with pytest.raises(InputError, match="cannot reach"):
        download_file("http://127.0.0.1:9/x.tar", tmp_path / "x.tar", timeout_s=2)  # closed port
    with pytest.raises(InputError, match="unknown dataset 'msd-liver'; known: msd-lung"):
        download_dataset("msd-liver", tmp_path)


def test_unreachable_host_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS query either: name resolution is made to fail here.
    def no_dns(*args: object, **kwargs: object) -> object:
        raise OSError("name resolution disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(InputError, match=r"download failed: cannot reach https://msd-for-monai"):
        download_file(SOURCES["msd-lung"].url, tmp_path / "x.tar", md5=SOURCES["msd-lung"].md5)
    assert not (tmp_path / "x.tar.part").exists() or (tmp_path / "x.tar.part").stat().st_size == 0


def test_official_source_is_recorded() -> None:
    src = SOURCES["msd-lung"]
    assert src.url == "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task06_Lung.tar"
    assert src.md5 == "8afd997733c7fc0432f71255ba4e52dc"
    # Cross-check with MONAI's DecathlonDataset table (read as text: importing it is slow).
    import importlib.util

    spec = importlib.util.find_spec("monai")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("MONAI not installed")
    text = (Path(next(iter(spec.submodule_search_locations))) / "apps" / "datasets.py").read_text()
    assert f'"Task06_Lung": "{src.md5}"' in text
    assert f'"Task06_Lung": "{src.url}"' in text


def test_download_dataset_extracts_and_opens(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, s = server
    tar = task_tar()
    s.files["/Task06_Lung.tar"] = tar
    res = download_dataset(
        "msd-lung", tmp_path / "data", url=f"{url}/Task06_Lung.tar", md5=md5(tar)
    )
    root = tmp_path / "data" / "Task06_Lung"
    assert res["dataset_dir"] == root and res["n_cases"] == 1
    assert (root / "imagesTr" / "lung_001.nii.gz").is_file()
    assert not (root / "imagesTr" / "._lung_001.nii.gz").exists()
    assert (tmp_path / "data" / "Task06_Lung.tar").is_file()  # kept by default
    # A second call finds the dataset and does not touch the network.
    n = len(s.requests)
    again = download_dataset(
        "msd-lung", tmp_path / "data", url=f"{url}/Task06_Lung.tar", md5=md5(tar)
    )
    assert again["already_present"] is True and len(s.requests) == n


def test_download_refuses_malicious_archive(tmp_path: Path, server: tuple[str, Served]) -> None:
    url, s = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("Task06_Lung/../../escaped.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    data = buf.getvalue()
    s.files["/evil.tar"] = data
    with pytest.raises(InputError, match="path component refused"):
        download_dataset("msd-lung", tmp_path / "data", url=f"{url}/evil.tar", md5=md5(data))
    assert (
        not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    )


def test_cli_download(
    tmp_path: Path, server: tuple[str, Served], capsys: pytest.CaptureFixture[str]
) -> None:
    url, s = server
    tar = task_tar()
    s.files["/Task06_Lung.tar"] = tar
    dest = tmp_path / "data"
    code = main(
        [
            "dataset",
            "download",
            "msd-lung",
            str(dest),
            "--url",
            f"{url}/Task06_Lung.tar",
            "--md5",
            "0" * 32,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "MD5 checksum mismatch" in err and "Traceback" not in err
    code = main(
        [
            "dataset",
            "download",
            "msd-lung",
            str(dest),
            "--url",
            f"{url}/Task06_Lung.tar",
            "--md5",
            md5(tar),
            "--remove-archive",
        ]
    )
    assert code == 0
    assert (dest / "Task06_Lung" / "dataset.json").is_file()
    assert not (dest / "Task06_Lung.tar").exists()
    run = json.loads((dest / "run.json").read_text())
    assert run["command"] == "dataset download" and run["result"]["n_cases"] == 1
