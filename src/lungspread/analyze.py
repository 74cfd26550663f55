"""``lungspread.analyze``: tumor, lungs and spread report from one chest CT.

The pipeline, one direction, each stage timed::

    read -> CT check -> lungs -> lung-region crop -> model (resample to the model's spacing,
    sliding window, optional mirror TTA) -> postprocess (threshold, lesions outside the dilated
    lungs dropped, minimum size) -> back to the input grid -> spread report

Use it from Python::

    import lungspread
    result = lungspread.analyze("ct.nii.gz")          # or a Volume, or an array + spacing_mm
    result.tumor, result.lungs, result.report         # Volumes on the input grid, a dict
    result.write("out/")    # tumor.nii.gz, lungs.nii.gz, report.json, run.json

For many scans, build one :class:`Analyzer` (it loads the model once) and call it per scan;
:mod:`lungspread.batch` does that for a folder of CTs.
"""

from __future__ import annotations

import logging
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import InputError, ModelError, NotCTError
from lungspread.volume import Volume

log = logging.getLogger(__name__)

#: Stage callback: ``(stage, None)`` when a stage starts, ``(stage, seconds)`` when it ends.
StageCallback = Callable[[str, "float | None"], None]

#: Stage names, in order, with the words the CLI shows for them.
STAGES: dict[str, str] = {
    "read": "reading the CT",
    "check": "checking that it is a CT in HU",
    "lungs": "segmenting the lungs",
    "model": "loading the model",
    "predict": "finding tumors (model)",
    "postprocess": "cleaning up the tumor mask",
    "report": "measuring the spread",
}

#: Margin (mm) added around the lungs' bounding box before the model sees the scan: enough
#: for the network's context at the lung boundary and for tumors that grow out of the lung.
CROP_MARGIN_MM = 15.0

#: Files that :meth:`AnalysisResult.write` always writes (``run.json`` last).
CORE_FILES = ("tumor.nii.gz", "lungs.nii.gz", "report.json", "run.json")


def bundled_model_dir() -> Path:
    """Folder of the default model shipped inside the package (``lungspread/weights``)."""
    return Path(__file__).resolve().parent / "weights"


@dataclass
class AnalysisResult:
    """What :func:`analyze` found, on the input CT's grid.

    * ``ct``: the input CT (HU) as read;
    * ``tumor``: uint8 mask, 1 = tumor, same shape and affine as ``ct``;
    * ``lungs``: uint8 labels, 1 = right lung, 2 = left lung;
    * ``report``: the spread report (:func:`lungspread.spread.spread_report`);
    * ``run``: inputs, options, model, post-processing counts and stage timings (``run.json``);
    * ``probability``: the tumor probability map (float32) when asked for, else None;
    * ``source``: the input path (None for in-memory input); ``run.json`` records only its name.
    """

    ct: Volume
    tumor: Volume
    lungs: Volume
    report: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)
    probability: Volume | None = None
    source: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A few headline numbers: tumor volume, lesion count, lung volumes, timings."""
        voxel_ml = self.ct.voxel_volume_mm3 / 1000.0
        lesions = self.report.get("lesions", []) if isinstance(self.report, dict) else []
        lung_counts = np.bincount(self.lungs.array.ravel(), minlength=3)
        return {
            "tumor_volume_ml": float(np.count_nonzero(self.tumor.array) * voxel_ml),
            "lesion_count": len(lesions),
            "right_lung_ml": float(lung_counts[1] * voxel_ml),
            "left_lung_ml": float(lung_counts[2] * voxel_ml),
            "seconds": float(self.run.get("timings_s", {}).get("total", float("nan"))),
        }

    def write(
        self,
        out_dir: str | Path,
        overwrite: bool = False,
        export: bool = True,
        command: str = "analyze",
        also: dict[str, Volume | dict[str, Any]] | None = None,
    ) -> Path:
        """Write the results into ``out_dir`` and return it.

        Always ``tumor.nii.gz``, ``lungs.nii.gz`` and ``report.json``; then whatever
        :func:`lungspread.export.write_all` adds when ``export`` is true and that exporter is
        installed (segmentation, meshes, figures, HTML report); then ``run.json``, written
        last and only after everything else is in place, so a folder with ``run.json`` is a
        finished analysis (batch mode relies on this). Staged: a failure leaves nothing behind.
        ``also`` adds more files (file name -> Volume or JSON dict), ``command`` is the name
        recorded in ``run.json``.
        """
        from lungspread.io import write_volume
        from lungspread.outputs import RunRecord, output_dir, write_json

        out = Path(out_dir)
        exported: list[str] = []
        t0 = time.perf_counter()
        with output_dir(out, overwrite=overwrite) as stage:
            write_volume(self.tumor, stage / "tumor.nii.gz")
            write_volume(self.lungs, stage / "lungs.nii.gz")
            write_json(stage / "report.json", self.report)
            for name, item in (also or {}).items():
                if isinstance(item, Volume):
                    write_volume(item, stage / name)
                else:
                    write_json(stage / name, item)
            if export:
                exported = _run_exporters(stage, self)
        record = RunRecord(command, self.run.get("inputs", {}), self.run.get("options", {}))
        extra = {k: v for k, v in self.run.items() if k not in ("inputs", "options")}
        timings = dict(self.run.get("timings_s", {}))
        timings["write"] = round(time.perf_counter() - t0, 4)
        extra["timings_s"] = timings
        written = ["tumor.nii.gz", "lungs.nii.gz", "report.json", *(also or {}), *exported]
        extra["outputs"] = [*written, "run.json"]
        record.write(out, **extra)
        return out


def _run_exporters(stage: Path, result: AnalysisResult) -> list[str]:
    """The hook for the export package: ``lungspread.export.write_all`` if it exists.

    Contract: ``write_all(out_dir: Path, *, ct: Volume, tumor: Volume, lungs: Volume,
    report: dict, source: Path | None) -> list[Path]`` writes extra views of the result
    into ``out_dir`` (the staging folder) and returns the files it wrote.
    """
    try:
        from lungspread.export import write_all  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return []
    written = write_all(
        stage,
        ct=result.ct,
        tumor=result.tumor,
        lungs=result.lungs,
        report=result.report,
        source=result.source,
    )
    names: list[str] = []
    for p in written or []:
        try:
            names.append(str(Path(p).relative_to(stage)))
        except ValueError:
            names.append(Path(p).name)
    return names


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is usable, else ``"cpu"``; checks explicit choices."""
    import torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but PyTorch sees no CUDA GPU here")
    return device


#: Numeric precisions of the network: "auto" picks bfloat16 where the hardware has it.
PRECISIONS = ("auto", "float32", "bfloat16")

#: Largest sliding window (voxels at the model's spacing) analyze uses by default: a lung
#: region at 1.5 mm (about 6 M voxels) fits in one window, so nothing is computed twice.
DEFAULT_MAX_WINDOW_VOXELS = 8_000_000


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` -> ``"bfloat16"`` on CPUs with native bf16 (AVX512-BF16/AMX) and on GPUs
    that support it, else ``"float32"``."""
    import torch

    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bfloat16" if native else "float32"


def choose_window(
    shape: tuple[int, int, int],
    divisor: int,
    max_voxels: int,
    min_window: list[int],
) -> list[int]:
    """Sliding-window size for a region of ``shape`` voxels.

    Each axis gets the region's size rounded up to a multiple of ``divisor`` (one window
    covers it) but at least ``min_window`` (the training patch); while the window holds more
    than ``max_voxels``, its longest axis is halved (rounded up to the divisor), which
    tiles the region with few windows.
    """

    def up(n: float) -> int:
        return int(divisor * int(np.ceil(n / divisor)))

    win = [max(up(s), up(m)) for s, m in zip(shape, min_window, strict=True)]
    while int(np.prod(win)) > max_voxels:
        axis = int(np.argmax(win))
        smaller = max(up(win[axis] / 2), up(min_window[axis]))
        if smaller >= win[axis]:
            break
        win[axis] = smaller
    return win


def _divisor(net: Any, patch_size: list[int]) -> int:
    """What window sizes must be multiples of: the network's ``divisor`` if it says, else
    the largest power of two dividing every axis of its training patch."""
    declared = getattr(net, "divisor", None)
    if isinstance(declared, int) and declared > 0:
        return declared
    d = 1
    while all(int(p) % (2 * d) == 0 for p in patch_size) and d < 64:
        d *= 2
    return d


def _resampled_shape(region: Volume, spec: Any) -> tuple[int, int, int]:
    from lungspread.inference.predictor import resampled_shape

    return resampled_shape(region.shape, region.spacing, spec.spacing_mm, spec.dims)


class FastInference:
    """Wraps a network for inference in bfloat16 (autocast) with channels-last memory.

    On CPUs with native bf16 this runs 3D convolutions about 3 times faster than float32
    (oneDNN), with tumor probabilities within about 1e-2 of float32's (measured in
    benchmarks/bench_analyze.py). Call it like the network; returns float32 logits.
    """

    def __init__(self, net: Any, precision: str, device: str) -> None:
        import torch

        self.net = net.to(memory_format=torch.channels_last_3d)
        self.dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
        self.device_type = "cuda" if device.startswith("cuda") else "cpu"

    def to(self, *args: Any, **kwargs: Any) -> FastInference:
        self.net = self.net.to(*args, **kwargs)
        return self

    def eval(self) -> FastInference:
        self.net.eval()
        return self

    def __call__(self, x: Any) -> Any:
        import torch

        x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.net(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.float()


def as_volume(
    ct: Volume | str | Path | np.ndarray,
    spacing_mm: tuple[float, float, float] | None = None,
) -> tuple[Volume, Path | None]:
    """The input as a :class:`Volume` plus its source path (None for in-memory inputs).

    A numpy array needs ``spacing_mm``; its axes are taken along +x, +y, +z of RAS (``i``
    towards the patient's right, ``j`` anterior, ``k`` superior), as in
    :meth:`Volume.from_spacing`. Pass a :class:`Volume` when the orientation differs.
    """
    if isinstance(ct, Volume):
        return ct, None
    if isinstance(ct, (str, Path)):
        from lungspread.io import read_volume

        path = Path(ct)
        return read_volume(path), path
    if isinstance(ct, np.ndarray):
        if spacing_mm is None:
            raise InputError(
                f"a numpy array needs spacing_mm=(si, sj, sk); got an array of shape {ct.shape} "
                "and no spacing"
            )
        if ct.ndim != 3:
            raise InputError(f"expected a 3D array, found shape {ct.shape}")
        sp = tuple(float(s) for s in spacing_mm)
        if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
            raise InputError(f"spacing_mm must be three positive numbers, got {spacing_mm!r}")
        return Volume.from_spacing(ct, sp), None
    raise InputError(f"expected a Volume, a path or a numpy array, got {type(ct).__name__}")


def lung_crop_box(
    lungs: Volume, margin_mm: float = CROP_MARGIN_MM
) -> tuple[slice, slice, slice] | None:
    """Bounding box of the lungs (labels > 0) grown by ``margin_mm``; None without lungs."""
    idx = np.nonzero(lungs.array.any(axis=(1, 2)))[0]
    if idx.size == 0:
        return None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        nz = np.nonzero(lungs.array.any(axis=other))[0]
        pad = int(np.ceil(margin_mm / lungs.spacing[axis]))
        box.append(slice(max(0, int(nz[0]) - pad), min(lungs.shape[axis], int(nz[-1]) + 1 + pad)))
    return (box[0], box[1], box[2])


def crop_volume(volume: Volume, box: tuple[slice, slice, slice]) -> Volume:
    """The sub-volume ``volume.array[box]`` with its affine moved to the box's first voxel."""
    start = np.array([s.start for s in box], dtype=np.float64)
    affine = volume.affine.copy()
    affine[:3, 3] = volume.index_to_world(start)
    return Volume(np.ascontiguousarray(volume.array[box]), affine, dict(volume.meta))


class Analyzer:
    """The analysis pipeline with its model loaded once; call :meth:`run` per CT.

    ``model`` is a training run folder or model folder (``model.json`` +
    ``model.safetensors``); None uses the bundled default model. ``threshold`` and
    ``min_lesion_mm3`` override the model's post-processing settings.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        tta: bool = False,
        device: str = "auto",
        force_ct: bool = False,
        threshold: float | None = None,
        min_lesion_mm3: float | None = None,
        keep_probability: bool = False,
        precision: str = "auto",
    ) -> None:
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision_requested = precision
        self.precision = "float32"
        self.model_dir = Path(model) if model is not None else bundled_model_dir()
        self.bundled = model is None
        self.tta = bool(tta)
        self.device_requested = device
        self.device = resolve_device(device)
        self.force_ct = bool(force_ct)
        self.threshold = threshold
        self.min_lesion_mm3 = min_lesion_mm3
        self.keep_probability = keep_probability
        self._predictor: Any = None

    # -- model ------------------------------------------------------------------------
    def load(self) -> Analyzer:
        """Load the model now (otherwise the first :meth:`run` does); raises ModelError."""
        self._load_predictor()
        return self

    def _load_predictor(self) -> Any:
        if self._predictor is None:
            if self.bundled and not (self.model_dir / "model.json").is_file():
                raise ModelError(
                    "this installation has no bundled model (lungspread/weights/model.json); "
                    "pass --model RUN_FOLDER",
                    self.model_dir,
                )
            from lungspread.inference.predictor import Predictor
            from lungspread.models.checkpoint import load_checkpoint

            net, spec = load_checkpoint(self.model_dir, device=self.device)
            self.precision = resolve_precision(self.precision_requested, self.device)
            if self.precision != "float32":
                net = FastInference(net, self.precision, self.device)
            self._predictor = Predictor(net, spec, self.device)
        return self._predictor

    def _predictor_for(self, prepared_shape: tuple[int, int, int]) -> Any:
        """The loaded predictor, with its window chosen for a region of this many voxels at
        the model's spacing: the whole region in one window when it fits
        ``inference.max_window_voxels`` (no overlap to recompute), else tiles."""
        import dataclasses

        from lungspread.inference.predictor import Predictor

        base = self._load_predictor()
        spec = base.spec
        if spec.dims != 3:
            return base
        inf = dict((spec.extra or {}).get("inference", {}))
        divisor = _divisor(getattr(base.net, "net", base.net), spec.patch_size)
        window = choose_window(
            prepared_shape,
            divisor=divisor,
            max_voxels=int(inf.get("max_window_voxels", DEFAULT_MAX_WINDOW_VOXELS)),
            min_window=[int(p) for p in spec.patch_size],
        )
        tiled = dataclasses.replace(spec, patch_size=window)
        return Predictor(
            base.net, tiled, base.device, overlap=float(inf.get("overlap", 0.25)), batch_size=1
        )

    def postprocess_options(self) -> Any:
        from lungspread.inference.postprocess import PostprocessOptions

        spec = getattr(self._load_predictor(), "spec", None)
        extra = getattr(spec, "extra", None) or {}
        defaults = dict(extra.get("postprocess", {}))
        if spec is not None and "threshold" not in defaults:
            defaults["threshold"] = getattr(spec, "threshold", 0.5)
        return PostprocessOptions.from_mapping(
            defaults, threshold=self.threshold, min_lesion_mm3=self.min_lesion_mm3
        )

    def model_info(self) -> dict[str, Any]:
        spec = getattr(self._load_predictor(), "spec", None)
        info: dict[str, Any] = {
            "folder": "bundled" if self.bundled else str(self.model_dir),
        }
        if spec is not None:
            info.update(
                name=spec.name,
                spacing_mm=list(spec.spacing_mm),
                patch_size=list(spec.patch_size),
                version=(spec.extra or {}).get("version"),
            )
        return info

    # -- pipeline ----------------------------------------------------------------------
    def run(
        self,
        ct: Volume | str | Path | np.ndarray,
        spacing_mm: tuple[float, float, float] | None = None,
        on_stage: StageCallback | None = None,
    ) -> AnalysisResult:
        """Analyze one CT; see :func:`analyze`."""
        timings: dict[str, float] = {}
        t_start = time.perf_counter()

        def stage(name: str) -> _Stage:
            return _Stage(name, timings, on_stage)

        with stage("read"):
            volume, source = as_volume(ct, spacing_mm)
        with stage("check"):
            check_info = _check_ct(volume, source, self.force_ct)
        with stage("lungs"):
            from lungspread.lungs import segment_lungs

            try:
                found = np.asarray(segment_lungs(volume).array, dtype=np.uint8)
            except InputError:
                if not self.force_ct:
                    raise
                found = np.zeros(volume.shape, dtype=np.uint8)  # forced: search everywhere
            lungs = volume.with_array(found)
            box = lung_crop_box(lungs)
            if box is None and not self.force_ct:
                raise NotCTError(
                    "expected a chest CT with lungs, found no lung region "
                    "(pass --force-ct to search the whole image)",
                    source,
                )
        with stage("model"):
            predictor = self._load_predictor()
            options = self.postprocess_options()
        with stage("predict"):
            if box is None:
                box = (
                    slice(0, volume.shape[0]),
                    slice(0, volume.shape[1]),
                    slice(0, volume.shape[2]),
                )
            region = crop_volume(volume, box)
            prepared = _resampled_shape(region, predictor.spec)
            prob = self._predictor_for(prepared).predict_proba(region, tta=self.tta)
            prob_arr = np.asarray(prob.array if isinstance(prob, Volume) else prob, np.float32)
            if prob_arr.shape != region.shape:
                raise ModelError(
                    f"predictor returned probabilities of shape {prob_arr.shape}, "
                    f"expected the input region's {region.shape}",
                    self.model_dir,
                )
        with stage("postprocess"):
            from lungspread.inference.postprocess import postprocess

            lung_region = lungs.array[box] if lungs.array[box].any() else None
            post = postprocess(prob_arr, volume.spacing, lung_region, options)
            tumor_arr = np.zeros(volume.shape, dtype=np.uint8)
            tumor_arr[box] = post.mask
            tumor = volume.with_array(tumor_arr)
            probability = None
            if self.keep_probability:
                full = np.zeros(volume.shape, dtype=np.float32)
                full[box] = prob_arr
                probability = volume.with_array(full)
            del prob_arr, prob
        with stage("report"):
            report = _spread_report(tumor, volume, lungs)
        timings["total"] = round(time.perf_counter() - t_start, 4)

        run = {
            # the input's name only: folder names often carry patient names
            "inputs": {"ct": source.name if source is not None else None},
            "options": {
                "model": "bundled" if self.bundled else str(self.model_dir),
                "tta": self.tta,
                "device": self.device_requested,
                "force_ct": self.force_ct,
                "threshold": self.threshold,
                "min_lesion_mm3": self.min_lesion_mm3,
            },
            "device_used": self.device,
            "precision": self.precision,
            "model": self.model_info(),
            "input_geometry": {
                "shape": list(volume.shape),
                "spacing_mm": [round(s, 6) for s in volume.spacing],
                "axes": "".join(volume.axis_codes()),
            },
            "ct_check": check_info,
            "crop": {"start": [s.start for s in box], "stop": [s.stop for s in box]},
            "postprocess": {**options.to_json(), **post.summary()},
            "timings_s": timings,
        }
        return AnalysisResult(
            ct=volume,
            tumor=tumor,
            lungs=lungs,
            report=report,
            run=run,
            probability=probability,
            source=source,
        )


class _Stage:
    """Context manager timing one stage and telling the callback."""

    def __init__(
        self, name: str, timings: dict[str, float], callback: StageCallback | None
    ) -> None:
        self.name, self.timings, self.callback = name, timings, callback
        self.t0 = 0.0

    def __enter__(self) -> _Stage:
        self.t0 = time.perf_counter()
        if self.callback is not None:
            self.callback(self.name, None)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        dt = time.perf_counter() - self.t0
        self.timings[self.name] = round(dt, 4)
        if exc_type is None and self.callback is not None:
            self.callback(self.name, dt)
        log.info("%s: %.2f s", self.name, dt)


def _check_ct(volume: Volume, source: Path | None, force: bool) -> Any:
    """The io developer's CT sanity check (raises NotCTError unless forced)."""
    from lungspread.ct_check import check_ct

    info = check_ct(volume, source, force)
    if info is None or isinstance(info, (dict, list, str, bool, int, float)):
        return info
    to_dict = getattr(info, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(info)


def _spread_report(tumor: Volume, ct: Volume, lungs: Volume) -> dict[str, Any]:
    from lungspread.spread import spread_report

    report: dict[str, Any] = spread_report(tumor, ct=ct, lungs=lungs)
    return report


def analyze(
    ct: Volume | str | Path | np.ndarray,
    spacing_mm: tuple[float, float, float] | None = None,
    model: str | Path | None = None,
    tta: bool = False,
    device: str = "auto",
    force_ct: bool = False,
    threshold: float | None = None,
    min_lesion_mm3: float | None = None,
    keep_probability: bool = False,
    precision: str = "auto",
    on_stage: StageCallback | None = None,
) -> AnalysisResult:
    """Find the tumors and lungs in one chest CT and measure the spread.

    Parameters
    ----------
    ct:
        A path (NIfTI, NRRD, MHA or a DICOM series folder), a :class:`Volume` in HU, or a 3D
        numpy array in HU together with ``spacing_mm``.
    spacing_mm:
        Voxel size (mm) along the array's axes; only for numpy input.
    model:
        A training run or model folder (``model.json`` + ``model.safetensors``); None uses
        the bundled default model.
    tta:
        Mirror test-time augmentation (slower, slightly smoother masks).
    device:
        ``"auto"`` (GPU when available), ``"cpu"`` or ``"cuda"``.
    force_ct:
        Analyze even when the image does not look like a chest CT in HU.
    threshold, min_lesion_mm3:
        Override the model's post-processing settings (probability threshold, smallest
        lesion kept in mm^3).
    keep_probability:
        Also return the tumor probability map (``result.probability``).
    precision:
        ``"auto"`` (bfloat16 where the CPU or GPU supports it natively, else float32),
        ``"float32"`` or ``"bfloat16"``.
    on_stage:
        Called as ``on_stage(stage, None)`` when a stage starts and ``on_stage(stage, seconds)``
        when it ends (stage names in :data:`STAGES`).

    Returns
    -------
    AnalysisResult
        ``tumor`` and ``lungs`` on the input's exact grid, ``report`` (dict) and ``run``
        (what ``run.json`` records); ``result.write(out_dir)`` writes the files.

    Raises
    ------
    LungspreadError
        For unreadable inputs, images that are not chest CTs, and unusable models.
    """
    analyzer = Analyzer(
        model=model,
        tta=tta,
        device=device,
        force_ct=force_ct,
        threshold=threshold,
        min_lesion_mm3=min_lesion_mm3,
        keep_probability=keep_probability,
        precision=precision,
    )
    return analyzer.run(ct, spacing_mm=spacing_mm, on_stage=on_stage)


class _CallableModule(types.ModuleType):
    """Lets ``lungspread.analyze(...)`` (the module) stand for :func:`analyze`."""

    def __call__(self, *args: Any, **kwargs: Any) -> AnalysisResult:
        return analyze(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
