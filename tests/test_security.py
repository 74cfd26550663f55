"""Security: no pickle, no code from files, no network at run time, no patient identifiers in
reports by default, and HTML that escapes whatever comes from files.

Archive extraction (path traversal, absolute paths, links, device files) is tested by the data
developer in ``tests/test_data_archive.py`` and ``tests/test_data_download.py``; here only a
static check that extraction happens nowhere else. The socket guard of ``tests/conftest.py``
blocks non-loopback connections in every test; :func:`test_commands_work_with_every_socket_refused`
goes further and refuses loopback and DNS too, from interpreter start.
"""

from __future__ import annotations

import ast
import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest

from analyze_fixtures import phantom_ct, write_tiny_model
from lungspread.cli.app import main
from lungspread.io import write_volume

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "lungspread"
LIDC1_DICOM = REPO.parent / "shared" / "data" / "lidc-idri-0001" / "dicom"


# -- static checks of the source ---------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


#: Modules that deserialize arbitrary objects (code execution from a file).
PICKLE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "shelve",
    "marshal",
}
#: Modules that open network connections.
NETWORK_MODULES = {
    "socket", "urllib.request", "http.client", "requests", "httpx", "urllib3", "aiohttp",
    "ftplib", "smtplib", "huggingface_hub",
}  # fmt: skip
#: The one module allowed to touch the network: ``lungspread dataset download``.
NETWORK_ALLOWED = {"data/download.py"}
#: The one module allowed to extract archives (and so to guard against traversal).
EXTRACT_ALLOWED = {"data/archive.py"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for an attribute chain or a name, else ''."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def scan_source(text: str, rel: str) -> list[Finding]:
    """Unsafe loading, code execution, network and archive use in one module's source."""
    tree = ast.parse(text)
    found: list[Finding] = []

    def add(node: ast.AST, what: str) -> None:
        found.append(Finding(rel, getattr(node, "lineno", 0), what))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            mods = names if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module:
                mods += [f"{node.module}.{n}" for n in names]
            for mod in mods:
                if mod.split(".")[0] in PICKLE_MODULES:
                    add(node, f"imports {mod} (pickle-like deserialization)")
                if (mod in NETWORK_MODULES or mod.split(".")[0] in NETWORK_MODULES) and (
                    rel not in NETWORK_ALLOWED
                ):
                    add(node, f"imports {mod} (network) outside {sorted(NETWORK_ALLOWED)}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = node.func.attr if isinstance(node.func, ast.Attribute) else name
        if isinstance(node.func, ast.Name) and name in ("eval", "exec", "compile", "__import__"):
            add(node, f"calls {name}()")
        if name in ("builtins.eval", "builtins.exec"):
            add(node, f"calls {name}()")
        if (
            last == "load"
            and name.split(".")[0] == "torch"
            and not _is_const(_kw(node, "weights_only"), True)
        ):
            add(node, f"{name}() without weights_only=True")
        if name in ("torch.jit.load", "torch.package.PackageImporter"):
            add(node, f"{name}() loads code")
        if name in ("np.load", "numpy.load"):
            allow = _kw(node, "allow_pickle")
            if allow is not None and not _is_const(allow, False):
                add(node, f"{name}(allow_pickle=...) may unpickle")
        if last == "read_pickle" or name.endswith("pd.read_pickle"):
            add(node, f"{name}() unpickles")
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            loader = _kw(node, "Loader")
            if name != "yaml.load" or not (
                loader is not None and _dotted(loader).endswith("SafeLoader")
            ):
                add(node, f"{name}() without SafeLoader")
        if last in ("extractall", "extract", "extractfile") and rel not in EXTRACT_ALLOWED:
            add(node, f".{last}() outside {sorted(EXTRACT_ALLOWED)} (archive traversal guard)")
        if name.startswith("subprocess.") and _is_const(_kw(node, "shell"), True):
            add(node, f"{name}(shell=True)")
    return found


def test_the_scanner_catches_what_it_looks_for() -> None:
    bad = """
import pickle
from joblib import load
import torch, numpy as np, yaml, tarfile, subprocess
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
np.load("x.npy", allow_pickle=True)
yaml.load(text)
eval("1+1")
exec("x = 1")
tarfile.open("a.tar").extractall("dst")
subprocess.run("ls", shell=True)
from urllib.request import urlopen
"""
    whats = [f.what for f in scan_source(bad, "somewhere.py")]
    for needle in [
        "imports pickle",
        "imports joblib",
        "torch.load() without weights_only=True",
        "np.load(allow_pickle=...)",
        "yaml.load() without SafeLoader",
        "calls eval()",
        "calls exec()",
        ".extractall() outside",
        "shell=True",
        "imports urllib.request (network)",
    ]:
        assert any(needle in w for w in whats), (needle, whats)
    assert sum("torch.load" in w for w in whats) == 2
    good = """
import torch, numpy as np, yaml
torch.load("w.pt", weights_only=True)
np.load("x.npz", allow_pickle=False)
np.load("x.npy")
yaml.load(text, Loader=yaml.SafeLoader)
net.eval()
model.load_state_dict(state)
"""
    assert scan_source(good, "somewhere.py") == []


def test_source_loads_nothing_unsafely_and_opens_no_network() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30
    findings: list[Finding] = []
    for path in files:
        rel = path.relative_to(SRC).as_posix()
        findings += scan_source(path.read_text(encoding="utf-8"), rel)
    assert not findings, "\n".join(map(str, findings))


def test_weights_are_safetensors_and_json_only(tmp_path: Path) -> None:
    """A saved model folder holds JSON and safetensors only; a pickle in its place is refused
    as corrupt, not unpickled."""
    import torch

    from lungspread.errors import ModelError
    from lungspread.models.checkpoint import load_checkpoint

    folder = write_tiny_model(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    json.loads((folder / "model.json").read_text())
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (marker.write_text, ("code ran",))

    torch.save({"x": Evil()}, folder / "model.safetensors")  # a pickle under the right name
    with pytest.raises(ModelError, match="corrupt or unreadable"):
        load_checkpoint(folder)
    assert not marker.exists()


# -- no network at run time ----------------------------------------------------------------------
_NO_SOCKETS = r"""
import json, socket, sys
attempts = []
def refuse(name):
    def f(*a, **k):
        attempts.append([name, repr(a)[:200]])
        raise OSError("network refused by test_security")
    return f
socket.socket.connect = refuse("connect")
socket.socket.connect_ex = refuse("connect_ex")
socket.socket.sendto = refuse("sendto")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
socket.gethostbyname = refuse("gethostbyname")
from lungspread.cli.app import main
codes = {}
for line in sys.stdin:
    argv = json.loads(line)
    codes[" ".join(argv[:1])] = main(argv)
print("RESULT " + json.dumps({"codes": codes, "attempts": attempts}))
"""


@pytest.mark.parametrize("exports", ["core", pytest.param("every-export", marks=pytest.mark.slow)])
def test_commands_work_with_every_socket_refused(exports: str, tmp_path: Path) -> None:
    """lungs, spread, analyze and export in a fresh interpreter whose sockets refuse to
    connect anywhere, loopback included, and whose DNS lookups fail: they all succeed and
    never try. ``core`` leaves out the HTML report, figures and meshes (matplotlib, trimesh);
    ``every-export`` (slow) writes them all, from analyze and from export."""
    ct, _ = phantom_ct(0)
    ct_file = write_volume(ct, tmp_path / "ct.nii.gz")
    model = write_tiny_model(tmp_path / "model", bias=-1.0)
    code = main(["lungs", str(ct_file), "--out", str(tmp_path / "seg")])
    assert code == 0
    lungs = tmp_path / "seg" / "lungs.nii.gz"
    mask = small_lesion(lungs, tmp_path / "lesion.nii.gz")
    full = exports == "every-export"
    runs = [
        ["lungs", str(ct_file), "--out", str(tmp_path / "lungs")],
        ["spread", str(mask), "--ct", str(ct_file), "--out", str(tmp_path / "spread")],
        ["analyze", str(ct_file), "--out", str(tmp_path / "analyze"), "--model", str(model),
         "--device", "cpu", *([] if full else ["--no-export"])],
        ["export", str(mask), "--ct", str(ct_file), "--lungs", str(lungs),
         "--out", str(tmp_path / "export"), *([] if full else ["--no-html", "--no-figures"])],
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _NO_SOCKETS],
        input="".join(json.dumps(r) + "\n" for r in runs),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["attempts"] == []
    assert result["codes"] == {"lungs": 0, "spread": 0, "analyze": 0, "export": 0}
    assert (tmp_path / "export" / "meshes").is_dir()
    if full:
        assert (tmp_path / "analyze" / "report.html").is_file()
        # the HTML report loads nothing from anywhere: no external URL in tags or CSS
        html = (tmp_path / "export" / "report.html").read_text(encoding="utf-8")
        assert "Content-Security-Policy" in html
        for needle in ('src="http', "src='http", 'href="http', "url(http", "@import"):
            assert needle not in html, needle


# -- patient identifiers ------------------------------------------------------------------------
IDENTITY_TAGS = (
    "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber",
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "StudyID", "StudyDate",
    "SeriesDate", "AcquisitionDate", "ContentDate", "InstitutionName", "ReferringPhysicianName",
)  # fmt: skip


def source_identifiers(folder: Path) -> dict[str, str]:
    """Identifying values of a DICOM series (every file), as read by pydicom; dates also in
    ISO form. Values shorter than 6 characters are left out (they match by chance)."""
    values: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception:
            continue
        for tag in IDENTITY_TAGS:
            value = str(ds.get(tag, "") or "").strip()
            if len(value) >= 6:
                values.setdefault(f"{tag}={value}", value)
                if tag.endswith("Date") and len(value) == 8 and value.isdigit():
                    iso = f"{value[:4]}-{value[4:6]}-{value[6:]}"
                    values.setdefault(f"{tag}(iso)={iso}", iso)
    return values


def _texts(root: Path) -> Iterator[tuple[Path, str]]:
    """Every output file as text (gzip files decompressed), except the DICOM-SEG, which keeps
    the source's patient and study identity as the DICOM standard requires."""
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix == ".dcm":
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        yield path, data.decode("latin-1")


def leaks(root: Path, secrets: dict[str, str], skip: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path, text in _texts(root):
        if path.relative_to(root).as_posix() in skip:
            continue
        low = text.lower()
        found += [f"{path.relative_to(root)}: {k}" for k, v in secrets.items() if v.lower() in low]
    return found


def small_lesion(lungs_file: Path, out: Path) -> Path:
    """A 5x5x3-voxel 'lesion' in the middle of the right lung of a lung map (cheap to export:
    one lesion, one small mesh, three figures)."""
    from lungspread.io import read_volume

    lungs = read_volume(lungs_file)
    idx = np.argwhere(np.asarray(lungs.array) == 1)
    c = np.round(idx.mean(axis=0)).astype(int)
    arr = np.zeros(lungs.shape, np.uint8)
    arr[c[0] - 2 : c[0] + 3, c[1] - 2 : c[1] + 3, c[2] - 1 : c[2] + 2] = 1
    return write_volume(lungs.with_array(arr), out)


def _identified_dicom(folder: Path, evil: bool = False) -> Path:
    """The small phantom as a DICOM series with a full (made-up) patient and study identity."""
    from lungspread.io.dicom import write_dicom_series

    ct, _ = phantom_ct(0)
    files = write_dicom_series(
        ct.with_array(np.asarray(ct.array).astype(np.int16)),
        folder,
        series_uid="1.2.826.0.1.3680043.8.498.4242",
        study_uid="1.2.826.0.1.3680043.8.498.4343",
    )
    for path in files:
        ds = pydicom.dcmread(str(path))
        ds.PatientName = "<img src=x onerror=alert(1)>^Jane" if evil else "Doe^Jane^Q"
        ds.PatientID = "PAT-7391-2206"
        ds.PatientBirthDate = "19571102"
        ds.PatientSex = "F"
        ds.StudyDate = ds.SeriesDate = "20210314"
        ds.StudyTime = "101500"
        ds.AccessionNumber = "ACC99887766"
        ds.StudyID = "STUDY4711"
        ds.ReferringPhysicianName = "House^Gregory"
        ds.InstitutionName = "Princeton Plainsboro"
        if evil:
            ds.SeriesDescription = "</script><script>alert(2)</script>"
            ds.StudyDescription = '"><svg onload=alert(3)>'
        ds.save_as(str(path))
    return folder


@pytest.fixture(scope="module")
def id_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model"), bias=-1.0)


def _run_all(
    dicom: Path, model: Path, out: Path, capsys: pytest.CaptureFixture[str], full: bool
) -> dict[str, Path]:
    """analyze, lungs, spread, follow-up and export (default, and --keep-identifiers) on one
    DICOM folder; spread and export get a small lesion in the lungs analyze found. ``full``:
    analyze and export write every export (else analyze writes none and export no meshes or
    figures: the HTML report and the DICOM-SEG come from the same code either way)."""
    names = ("analyze", "lungs", "spread", "follow-up", "export", "export-keep")
    outs = {k: out / k for k in names}
    code = main(["analyze", str(dicom), "--out", str(outs["analyze"]), "--model", str(model),
                 "--device", "cpu", *([] if full else ["--no-export"])])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    lungs = outs["analyze"] / "lungs.nii.gz"
    mask = small_lesion(lungs, out / "lesion.nii.gz")
    runs = [
        ["lungs", dicom, "--out", outs["lungs"]],
        ["spread", mask, "--ct", dicom, "--lungs", lungs, "--out", outs["spread"]],
        ["follow-up", outs["spread"], outs["spread"], "--out", outs["follow-up"]],
        ["export", mask, "--ct", dicom, "--lungs", lungs, "--out", outs["export"],
         *([] if full else ["--no-meshes", "--no-figures"])],
        ["export", mask, "--ct", dicom, "--lungs", lungs, "--out", outs["export-keep"],
         "--keep-identifiers", "--no-slicer", "--no-dicom-seg", "--no-meshes", "--no-figures"],
    ]  # fmt: skip
    for argv in runs:
        code = main([str(a) for a in argv])
        assert code == 0, (argv, capsys.readouterr().err)
    capsys.readouterr()
    return outs


def _check_identity(outs: dict[str, Path], secrets: dict[str, str]) -> None:
    assert any(k.startswith("PatientID=") for k in secrets), secrets
    for name in ("analyze", "lungs", "spread", "follow-up", "export"):
        # every file, run.json included: the commands record input file names, not paths
        assert not leaks(outs[name], secrets, ()), (name, leaks(outs[name], secrets, ()))
    # the DICOM-SEG keeps the identity (the standard requires it) ...
    seg = pydicom.dcmread(str(outs["export"] / "segmentation.dcm"), stop_before_pixels=True)
    pid = next(v for k, v in secrets.items() if k.startswith("PatientID="))
    assert seg.PatientID == pid
    # ... and --keep-identifiers puts it into the HTML report
    html = (outs["export-keep"] / "report.html").read_text(encoding="utf-8")
    for tag in ("PatientID", "StudyInstanceUID"):
        value = next(v for k, v in secrets.items() if k.startswith(f"{tag}="))
        assert value in html, tag


def test_reports_carry_no_identifiers_by_default(
    id_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A phantom DICOM series with a full made-up identity, through every command that reads
    a CT; the folder name carries the patient ID too, as real folders often do."""
    dicom = _identified_dicom(tmp_path / "PAT-7391-2206" / "ct")
    secrets = source_identifiers(dicom)
    assert {"PatientName=Doe^Jane^Q", "PatientID=PAT-7391-2206", "StudyDate(iso)=2021-03-14",
            "AccessionNumber=ACC99887766"} <= set(secrets)  # fmt: skip
    outs = _run_all(dicom, id_model, tmp_path / "out", capsys, full=False)
    _check_identity(outs, secrets)


@pytest.mark.slow
def test_real_lidc_dicom_reports_carry_no_identifiers(
    id_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real LIDC-IDRI-0001 slices (TCIA's anonymized release still carries a patient ID,
    UIDs, dates and an accession number), with every export."""
    if not LIDC1_DICOM.is_dir():
        pytest.skip(f"real data not found at {LIDC1_DICOM}")
    secrets = source_identifiers(LIDC1_DICOM)
    assert "PatientID=LIDC-IDRI-0001" in secrets and "StudyDate(iso)=2000-01-01" in secrets
    outs = _run_all(LIDC1_DICOM, id_model, tmp_path / "out", capsys, full=True)
    assert (outs["analyze"] / "report.html").is_file()
    assert (outs["analyze"] / "segmentation.dcm").is_file()
    _check_identity(outs, secrets)


# -- HTML escapes text taken from files ---------------------------------------------------------
def test_html_escapes_file_names_and_dicom_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DICOM series stored at ``.../<script>alert(1)</script>`` (the ``/`` makes two folders)
    whose attributes hold markup, and a mask named ``<img ...>.nii.gz``, shown in the report
    with --keep-identifiers (which prints the source path and the DICOM identity): all of it
    appears escaped, none of it as markup."""
    from scipy import ndimage

    evil = tmp_path / "<script>alert(1)<" / "script>"
    dicom = _identified_dicom(evil, evil=True)
    assert str(dicom).endswith("<script>alert(1)</script>")
    _, tumor = phantom_ct(0)
    labels, _ = ndimage.label(np.asarray(tumor.array) > 0)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    one = labels == int(np.argmax(sizes))  # one lesion: fewer figures to draw
    mask = write_volume(
        tumor.with_array(one.astype(np.uint8)), tmp_path / "<img src=x onerror=alert(1)>.nii.gz"
    )
    out = tmp_path / "out"
    code = main(["export", str(mask), "--ct", str(dicom), "--out", str(out),
                 "--keep-identifiers", "--no-meshes", "--no-figures", "--no-slicer",
                 "--no-dicom-seg"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the source path, shown escaped
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert(2)" not in page and "&lt;/script&gt;&lt;script&gt;alert(2)" in page
    assert "<svg onload" not in page
    assert page.count("</script>") == page.count("<script")  # only the page's own scripts
