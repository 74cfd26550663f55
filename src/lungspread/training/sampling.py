"""Patch sampling with nnU-Net's foreground oversampling.

A batch of ``B`` patches: the last ``round(B * oversample_fg)`` are centred on a tumor voxel
drawn at random from the case's tumor voxels (nnU-Net forces the last 33% of each batch the
same way); the others are centred at random, or, with hard-negative mining on
(:mod:`lungspread.training.hard_negatives`), a share ``hard_fraction`` of them on a voxel
where the network fired falsely. Cases are drawn uniformly. 2D networks get
patches from slices: a random slice (or the slice of the drawn tumor voxel). Patches that
reach beyond the image are padded with the image's minimum (air, after normalization).

Partial-scan cuts (``partial_scan``, 3D only): a share of the patches is cut across the
body axis as if the scan ended inside them, everything beyond the cut set to the pad value
and to background, which is what the network sees at the first or last slice of a scan
that covers only part of the chest (a slab, a follow-up limited to the nodule). Training
chests are cropped to the whole lungs, so without the cuts the network meets the end of
the image only above the apex and below the bases, never across the hilum. A share
``thin_slab`` of the cut patches is cut on both sides, leaving a slab thinner than the patch
(a scan of a few centimetres: the network then sees the pad value above and below).

Sampling only copies small crops out of (possibly memory-mapped) arrays, so it is cheap; the
augmentation that follows runs on the whole batch on the training device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: tumor voxels remembered per case for oversampling (nnU-Net keeps 10,000 too)
MAX_FG_VOXELS = 10_000


@dataclass
class PreparedCase:
    """A training case on the network's grid: normalized image, 0/1 label, tumor voxels."""

    id: str
    image: np.ndarray
    label: np.ndarray
    fg_voxels: np.ndarray
    pad_value: float

    @classmethod
    def from_arrays(
        cls, case_id: str, image: np.ndarray, label: np.ndarray, seed: int = 0
    ) -> PreparedCase:
        coords = np.argwhere(np.asarray(label) > 0)
        if len(coords) > MAX_FG_VOXELS:
            pick = np.random.default_rng(seed).choice(len(coords), MAX_FG_VOXELS, replace=False)
            coords = coords[np.sort(pick)]
        pad = float(np.min(image)) if image.size else 0.0
        return cls(case_id, image, label, coords.astype(np.int32), pad)


def predict_case(
    net: Any, case: PreparedCase, plan: dict[str, Any], device: Any, overlap: float = 0.5
) -> np.ndarray:
    """The network's tumor probability over the whole ``case`` (its grid), by the sliding
    window inference uses; ``plan`` is the training plan (dims, patch_size, output)."""
    from lungspread.inference.predictor import infer_array

    return infer_array(
        net,
        np.asarray(case.image, dtype=np.float32),
        plan["dims"],
        plan["patch_size"],
        plan["output"],
        device,
        overlap=overlap,
        pad_value=case.pad_value,
    )


def crop_padded(
    array: np.ndarray, center: Sequence[int], size: Sequence[int], pad_value: float
) -> np.ndarray:
    """The box of ``size`` centred at ``center`` (``start = center - size // 2``), padded."""
    starts = [int(c) - int(s) // 2 for c, s in zip(center, size, strict=True)]
    src, dst = [], []
    for st, sz, n in zip(starts, size, array.shape, strict=True):
        lo, hi = max(st, 0), min(st + int(sz), n)
        if hi <= lo:
            lo = hi = 0
        src.append(slice(lo, hi))
        dst.append(slice(lo - st, lo - st + (hi - lo)))
    out = np.full(tuple(int(s) for s in size), pad_value, dtype=array.dtype)
    out[tuple(dst)] = array[tuple(src)]
    return out


def _random_center(
    rng: np.random.Generator, shape: Sequence[int], size: Sequence[int]
) -> list[int]:
    """A centre anywhere in the image (the box is padded where it leaves the image), so that
    every voxel is as likely to be seen as any other, the image's first and last slices
    included; a box kept inside the image would see them about ``size`` times less often
    than the middle, and the network would never learn what lies at the edge of its input.
    Along axes where the image is smaller than the box, the box is centred."""
    out = []
    for n, s in zip(shape, size, strict=True):
        out.append(n // 2 if n <= s else int(rng.integers(0, n)))
    return out


def cut_partial_scan(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    pad_value: float,
    both_sides: bool = False,
) -> None:
    """Cut a crop (in place) across its last axis (the slice axis of an axial CT, which
    training does not reorient) as if the scan ended there: one
    side, chosen at random, from a plane ``d`` voxels from the crop's centre on (``d``
    uniform from an eighth of the crop's depth, so that the centred voxel, a tumor or a
    mined false positive, stays in view, to just under half of it, so that at least one
    slice is cut), becomes ``pad_value`` and background.

    ``both_sides``: keep only a slab of ``v`` slices that holds the centre (``v`` uniform from
    an eighth to half of the depth, the slab's position uniform among those that hold the
    centre); both sides beyond it become ``pad_value`` and background."""
    depth = image.shape[-1]
    centre = depth // 2
    if both_sides:
        v = int(rng.integers(max(1, depth // 8), max(2, depth // 2 + 1)))
        lo = int(rng.integers(max(0, centre - v + 1), min(centre, depth - v) + 1))
        for cut in (np.s_[..., :lo], np.s_[..., lo + v :]):
            image[cut] = pad_value
            label[cut] = 0
        return
    d = int(rng.integers(max(1, depth // 8), max(2, depth // 2)))
    cut = np.s_[..., centre + d :] if rng.random() < 0.5 else np.s_[..., : max(centre - d, 0)]
    image[cut] = pad_value
    label[cut] = 0


def _clamped_center(center: Sequence[int], shape: Sequence[int], size: Sequence[int]) -> list[int]:
    out = []
    for c, n, s in zip(center, shape, size, strict=True):
        lo, hi = s // 2, n - (s - s // 2)
        out.append(n // 2 if hi < lo else int(min(max(c, lo), hi)))
    return out


class PatchSampler:
    """Draws batches ``(images (B, 1, *size) float32, labels (B, 1, *size) uint8)``.

    ``size`` is the crop size (the patch plus a margin for the spatial augmentation); 2 numbers
    for 2D networks (crops of the slices k), 3 for 3D networks.
    """

    def __init__(
        self,
        cases: list[PreparedCase],
        size: Sequence[int],
        batch_size: int,
        oversample_fg: float = 0.33,
        hard_fraction: float = 0.0,
        partial_scan: float = 0.0,
        thin_slab: float = 0.0,
    ) -> None:
        if not cases:
            raise ValueError("no training cases to sample from")
        self.cases = cases
        self.size = [int(s) for s in size]
        self.dims = len(self.size)
        self.batch_size = int(batch_size)
        self.n_forced = round(self.batch_size * float(oversample_fg))
        self.with_fg = [i for i, c in enumerate(cases) if len(c.fg_voxels)]
        self.hard_fraction = float(hard_fraction)
        self.hard_voxels: list[np.ndarray] = [np.zeros((0, 3), np.int32)] * len(cases)
        self.with_hard: list[int] = []
        self.partial_scan = float(partial_scan) if self.dims == 3 else 0.0
        self.thin_slab = float(thin_slab)

    def set_hard_negatives(self, voxels: list[np.ndarray]) -> None:
        """False-positive voxels per case (same order as the cases) to centre patches on."""
        if len(voxels) != len(self.cases):
            raise ValueError(f"{len(voxels)} hard-negative sets for {len(self.cases)} cases")
        self.hard_voxels = [np.asarray(v, dtype=np.int32) for v in voxels]
        self.with_hard = [i for i, v in enumerate(self.hard_voxels) if len(v)]

    def sample_one(
        self, rng: np.random.Generator, force_fg: bool, hard: bool = False
    ) -> tuple[np.ndarray, np.ndarray, float]:
        if force_fg and self.with_fg:
            case = self.cases[self.with_fg[int(rng.integers(len(self.with_fg)))]]
            voxel = case.fg_voxels[int(rng.integers(len(case.fg_voxels)))]
        elif hard and self.with_hard:
            index = self.with_hard[int(rng.integers(len(self.with_hard)))]
            case, mined = self.cases[index], self.hard_voxels[index]
            voxel = mined[int(rng.integers(len(mined)))]
        else:
            case = self.cases[int(rng.integers(len(self.cases)))]
            voxel = None
        img, lab = case.image, case.label
        if self.dims == 2:
            if voxel is not None:
                k = int(voxel[2])
                center = _clamped_center(voxel[:2], img.shape[:2], self.size)
            else:
                k = int(rng.integers(img.shape[2]))
                center = _random_center(rng, img.shape[:2], self.size)
            img2, lab2 = img[:, :, k], lab[:, :, k]
            return (
                crop_padded(np.asarray(img2), center, self.size, case.pad_value),
                crop_padded(np.asarray(lab2), center, self.size, 0),
                case.pad_value,
            )
        if voxel is not None:
            center = _clamped_center(voxel, img.shape, self.size)
        else:
            center = _random_center(rng, img.shape, self.size)
        return (
            crop_padded(img, center, self.size, case.pad_value),
            crop_padded(lab, center, self.size, 0),
            case.pad_value,
        )

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(images, labels, pad_values)``; ``pad_values`` (B,) is each crop's fill value."""
        images = np.empty((self.batch_size, 1, *self.size), dtype=np.float32)
        labels = np.empty((self.batch_size, 1, *self.size), dtype=np.uint8)
        pads = np.empty(self.batch_size, dtype=np.float32)
        for b in range(self.batch_size):
            force = b >= self.batch_size - self.n_forced
            # the draw happens only with mining on, so other runs keep their random streams
            hard = not force and self.hard_fraction > 0 and rng.random() < self.hard_fraction
            images[b, 0], labels[b, 0], pads[b] = self.sample_one(rng, force, hard)
            # drawn only with cuts on, so other runs keep their random streams
            if self.partial_scan > 0 and rng.random() < self.partial_scan:
                both = self.thin_slab > 0 and rng.random() < self.thin_slab
                cut_partial_scan(images[b, 0], labels[b, 0], rng, float(pads[b]), both)
        return images, labels, pads
