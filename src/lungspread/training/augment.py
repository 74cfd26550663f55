"""Batch augmentation on the training device: one ``grid_sample`` for all spatial transforms.

Written here rather than with MONAI/batchgenerators transforms because those work one sample
at a time on the CPU (the reason nnU-Net needs many worker processes); here every transform of
a batch is a handful of tensor operations that run wherever the network runs, so a CPU-only
machine or a single data process keeps up with the GPU.

Spatial (nnU-Net's probabilities): rotation (``p_rotate``; in-plane +-30 degrees, and for 3D
patches +-15 degrees out of plane), isotropic scaling 0.7-1.4 (``p_scale``), shifts up to 10%
of the patch (``p_shift``), smooth elastic deformation (``p_elastic``; a random coarse
displacement grid upsampled to the patch) and mirroring of every axis (p = 0.5 each). They
compose into one sampling grid per patch: ``source = A @ output + t + elastic``. The image is
sampled trilinearly (outside the crop: the pad value), the label linearly and thresholded at
0.5. The crop handed in is larger than the patch (see :func:`source_size`) so rotations and
zooming out rarely reach beyond it.

Intensity (after the spatial step): brightness (x 0.75-1.25, p 0.15), contrast (0.75-1.25,
p 0.15, range preserved), gamma (0.7-1.5, p 0.3, on the sample's range), Gaussian blur
(sigma 0.5-1 voxel, p 0.2) and Gaussian noise (variance 0-0.1, p 0.1).

All random numbers come from one CPU ``torch.Generator``, so a batch is reproducible from the
generator's state whatever the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the augmentations (nnU-Net's defaults where it has one)."""

    p_rotate: float = 0.2
    rotate_deg: float = 30.0
    rotate_out_of_plane_deg: float = 15.0
    p_scale: float = 0.2
    scale: tuple[float, float] = (0.7, 1.4)
    p_shift: float = 0.2
    shift_fraction: float = 0.1
    p_elastic: float = 0.2
    elastic_fraction: float = 0.03
    elastic_grid: int = 4
    p_mirror: float = 0.5
    p_brightness: float = 0.15
    brightness: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    p_gamma: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.5)
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_noise: float = 0.1
    noise_variance: tuple[float, float] = (0.0, 0.1)


def source_size(patch: Sequence[int], augment: bool) -> list[int]:
    """Crop size to sample for a patch: +40% in plane (and +16% across slices in 3D) when
    augmenting, so that rotations and zooming out see real voxels; kept the same parity
    as the patch so that an identity transform lands exactly on voxel centres."""
    if not augment:
        return [int(p) for p in patch]
    out = []
    for a, p in enumerate(patch):
        factor = 1.4 if (len(patch) == 2 or a < 2) else 1.16
        s = math.ceil(p * factor)
        if (s - p) % 2:
            s += 1
        out.append(s)
    return out


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _chance(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _rotation(axis_a: int, axis_b: int, angle: torch.Tensor, nd: int) -> torch.Tensor:
    """(B, nd, nd) rotations by ``angle`` (radians) in the plane of two axes."""
    n = angle.shape[0]
    r = torch.eye(nd).repeat(n, 1, 1)
    c, s = torch.cos(angle), torch.sin(angle)
    r[:, axis_a, axis_a] = c
    r[:, axis_a, axis_b] = -s
    r[:, axis_b, axis_a] = s
    r[:, axis_b, axis_b] = c
    return r


def spatial_params(
    gen: torch.Generator, n: int, patch: Sequence[int], cfg: AugmentConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample matrix ``A`` (n, nd, nd) and shift ``t`` (n, nd) in voxel units."""
    nd = len(patch)
    mats = torch.eye(nd).repeat(n, 1, 1)
    deg = math.pi / 180.0
    on = _chance(gen, n, cfg.p_rotate)
    ang = _uniform(gen, n, -cfg.rotate_deg, cfg.rotate_deg) * deg * on
    mats = _rotation(0, 1, ang, nd) @ mats
    if nd == 3:
        for a, b in ((0, 2), (1, 2)):
            ang = (
                _uniform(gen, n, -cfg.rotate_out_of_plane_deg, cfg.rotate_out_of_plane_deg)
                * deg
                * on
            )
            mats = _rotation(a, b, ang, nd) @ mats
    scale = torch.where(_chance(gen, n, cfg.p_scale), _uniform(gen, n, *cfg.scale), torch.ones(n))
    mats = mats * scale[:, None, None]
    mirror = torch.where(_chance(gen, n * nd, cfg.p_mirror), -1.0, 1.0).reshape(n, nd)
    mats = mats * mirror[:, None, :]
    p = torch.tensor([float(x) for x in patch])
    shift = (torch.rand(n, nd, generator=gen) * 2 - 1) * cfg.shift_fraction * p
    shift = shift * _chance(gen, n, cfg.p_shift)[:, None]
    return mats, shift


def _elastic(
    gen: torch.Generator, n: int, patch: Sequence[int], cfg: AugmentConfig
) -> torch.Tensor:
    """(n, *patch, nd) smooth displacements in voxels (zero for samples without elastic)."""
    nd = len(patch)
    coarse = [min(cfg.elastic_grid, int(p)) for p in patch]
    field = torch.randn(n, nd, *coarse, generator=gen)
    mag = _uniform(gen, n, 0.0, cfg.elastic_fraction) * _chance(gen, n, cfg.p_elastic)
    per_axis = torch.tensor([float(p) for p in patch])
    field = field * mag.view(n, 1, *([1] * nd)) * per_axis.view(1, nd, *([1] * nd))
    mode = "bilinear" if nd == 2 else "trilinear"
    up = F.interpolate(field, size=[int(p) for p in patch], mode=mode, align_corners=True)
    return up.movedim(1, -1)


def sampling_grid(
    mats: torch.Tensor,
    shift: torch.Tensor,
    displacement: torch.Tensor | None,
    patch: Sequence[int],
    source: Sequence[int],
) -> torch.Tensor:
    """``grid_sample`` grid (n, *patch, nd), coordinates in reversed axis order, normalized
    for ``align_corners=True`` on a source of size ``source``."""
    nd = len(patch)
    axes = [torch.arange(int(p), dtype=torch.float32) - (int(p) - 1) / 2.0 for p in patch]
    base = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*patch, nd)
    pts = torch.einsum("nab,...b->n...a", mats, base) + shift.view(-1, *([1] * nd), nd)
    if displacement is not None:
        pts = pts + displacement
    half = torch.tensor([max((int(s) - 1) / 2.0, 0.5) for s in source])
    return (pts / half).flip(-1)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample (grouped convolutions)."""
    n = x.shape[0]
    nd = x.ndim - 2
    radius = 2
    offs = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-0.5 * (offs[None, :] / sigma[:, None].clamp_min(1e-3)) ** 2)
    k = k / k.sum(dim=1, keepdim=True)
    y = x.reshape(1, n, *x.shape[2:])
    conv = F.conv2d if nd == 2 else F.conv3d
    for axis in range(nd):
        shape = [n, 1] + [1] * nd
        shape[2 + axis] = 2 * radius + 1
        pad = [0] * (2 * nd)
        pad[2 * (nd - 1 - axis)] = radius
        pad[2 * (nd - 1 - axis) + 1] = radius
        y = conv(F.pad(y, pad, mode="replicate"), k.reshape(shape), groups=n)
    return y.reshape(x.shape)


def augment_batch(
    image: torch.Tensor,
    label: torch.Tensor,
    patch: Sequence[int],
    gen: torch.Generator,
    pad_value: torch.Tensor | float = 0.0,
    cfg: AugmentConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment ``(n, 1, *source)`` image and label crops into ``(n, 1, *patch)`` patches.

    ``label`` comes back as float 0/1. ``pad_value`` (scalar or per sample) fills what lies
    outside the crop.
    """
    cfg = cfg or AugmentConfig()
    n = image.shape[0]
    nd = image.ndim - 2
    dev = image.device
    source = list(image.shape[2:])
    mats, shift = spatial_params(gen, n, patch, cfg)
    disp = _elastic(gen, n, patch, cfg)
    grid = sampling_grid(mats, shift, disp, patch, source).to(dev)
    pad = torch.as_tensor(pad_value, dtype=torch.float32).reshape(-1)
    pad = (pad if pad.numel() == n else pad.expand(n)).to(dev).view(n, 1, *([1] * nd))
    x = F.grid_sample(image.float() - pad, grid, mode="bilinear", align_corners=True) + pad
    y = F.grid_sample(label.float(), grid, mode="bilinear", align_corners=True)
    y = (y >= 0.5).float()

    view = (n, *([1] * (nd + 1)))
    # brightness
    m = torch.where(_chance(gen, n, cfg.p_brightness), _uniform(gen, n, *cfg.brightness), 1.0)
    x = x * m.to(dev).view(view)
    # contrast, preserving the sample's range
    c = torch.where(_chance(gen, n, cfg.p_contrast), _uniform(gen, n, *cfg.contrast), 1.0)
    flat = x.reshape(n, -1)
    lo, hi = flat.min(1)[0].view(view), flat.max(1)[0].view(view)
    mean = flat.mean(1).view(view)
    x = torch.minimum(torch.maximum((x - mean) * c.to(dev).view(view) + mean, lo), hi)
    # gamma on the sample's range
    g = torch.where(_chance(gen, n, cfg.p_gamma), _uniform(gen, n, *cfg.gamma), 1.0)
    rng = (hi - lo).clamp_min(1e-6)
    x = ((x - lo) / rng).clamp(0, 1).pow(g.to(dev).view(view)) * rng + lo
    # blur
    blur_on = _chance(gen, n, cfg.p_blur)
    sigma = _uniform(gen, n, *cfg.blur_sigma)
    if bool(blur_on.any()):
        x = torch.where(blur_on.to(dev).view(view), _blur(x, sigma.to(dev)), x)
    # noise
    var = torch.where(_chance(gen, n, cfg.p_noise), _uniform(gen, n, *cfg.noise_variance), 0.0)
    if bool((var > 0).any()):
        noise = torch.randn(x.shape, generator=gen)
        x = x + noise.to(dev) * var.sqrt().to(dev).view(view)
    return x.contiguous(), y.contiguous()


def center_crop(batch: torch.Tensor, patch: Sequence[int]) -> torch.Tensor:
    """The central ``patch`` of ``(n, c, *source)`` (no augmentation)."""
    sl = [slice(None), slice(None)]
    for s, p in zip(batch.shape[2:], patch, strict=True):
        start = (int(s) - int(p)) // 2
        sl.append(slice(start, start + int(p)))
    return batch[tuple(sl)]
