"""Partial-scan cuts in training: patches cut as if the scan ended inside them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lungspread.errors import InputError
from lungspread.training.config import make_config
from lungspread.training.sampling import PatchSampler, PreparedCase, cut_partial_scan


def _case() -> PreparedCase:
    image = np.arange(40 * 40 * 60, dtype=np.float32).reshape(40, 40, 60) + 1.0
    label = np.zeros(image.shape, np.uint8)
    label[15:25, 15:25, 20:40] = 1
    return PreparedCase.from_arrays("c", image, label)


def _cut_ones(rng: np.random.Generator, both_sides: bool = False) -> tuple[np.ndarray, ...]:
    """A crop of ones (image) and tumor (label), 32 slices deep, cut with pad value -3."""
    image = np.ones((4, 4, 32), np.float32)
    label = np.ones((4, 4, 32), np.uint8)
    cut_partial_scan(image, label, rng, -3.0, both_sides)
    return image, label


def test_a_cut_blanks_one_side_beyond_a_plane_and_keeps_the_centre() -> None:
    rng = np.random.default_rng(0)
    sides = set()
    for _ in range(200):
        image, label = _cut_ones(rng)
        blank = (image == -3.0).all(axis=(0, 1))
        # the blanked slices are exactly those with background label, and only those
        np.testing.assert_array_equal(blank, (label == 0).all(axis=(0, 1)))
        assert ((image == -3.0) | (image == 1.0)).all()
        z = np.nonzero(blank)[0]
        assert len(z) > 0
        # one contiguous run that reaches the crop's first or last slice
        assert z[-1] - z[0] + 1 == len(z) and (z[0] == 0 or z[-1] == 31)
        sides.add(bool(z[0] == 0))
        # at least an eighth of the depth around the centre stays in view
        assert not blank[16 - 4 : 16 + 4].any()
    assert sides == {True, False}


def test_sampler_cuts_the_share_of_3d_patches_asked_for() -> None:
    case = _case()
    every = PatchSampler([case], (16, 16, 24), batch_size=4, partial_scan=1.0)
    rng = np.random.default_rng(1)
    for _ in range(10):
        images, labels, pads = every.sample(rng)
        for b in range(4):
            blank = (images[b, 0] == pads[b]).all(axis=(0, 1))
            assert blank.any() and not labels[b, 0][:, :, blank].any()
            assert labels[3, 0].any()  # the forced patch still shows its tumor voxel
    some = PatchSampler([case], (16, 16, 24), batch_size=4, oversample_fg=0.0, partial_scan=0.3)
    # a case with no pad value inside the image: a patch centred in it is cut or is not
    cut = 0
    for _ in range(100):
        images, _, pads = some.sample(rng)
        cut += sum(int((images[b, 0] == pads[b]).all(axis=(0, 1)).any()) for b in range(4))
    # uncut patches reach beyond the image too (random centres), so cut >= the share asked for
    assert 120 <= cut < 400


def test_sampler_without_cuts_keeps_its_random_stream() -> None:
    case = _case()
    a = PatchSampler([case], (16, 16, 24), batch_size=3)
    b = PatchSampler([case], (16, 16, 24), batch_size=3, partial_scan=0.0)
    ra, rb = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):
        np.testing.assert_array_equal(a.sample(ra)[0], b.sample(rb)[0])


def test_2d_patches_are_never_cut() -> None:
    flat = PatchSampler([_case()], (16, 16), batch_size=2, partial_scan=1.0)
    assert flat.partial_scan == 0.0


def test_config_checks_the_share_and_records_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="partial_scan"):
        make_config("default", partial_scan=1.5)
    from lungspread.training.trainer import config_hash

    plain = make_config("default", model="fast3d")
    cut = make_config("default", model="fast3d", partial_scan=0.3)
    assert config_hash(cut) != config_hash(plain)
    assert json.loads(json.dumps(cut.to_json()))["partial_scan"] == 0.3


def test_a_thin_slab_cut_keeps_one_slab_around_the_centre() -> None:
    rng = np.random.default_rng(2)
    depths = set()
    for _ in range(300):
        image, label = _cut_ones(rng, both_sides=True)
        kept = (image == 1.0).all(axis=(0, 1))
        np.testing.assert_array_equal(~kept, (label == 0).all(axis=(0, 1)))
        assert ((image == -3.0) | (image == 1.0)).all()
        z = np.nonzero(kept)[0]
        # one contiguous slab of 4 to 16 slices that holds the centre slice (16)
        assert z[-1] - z[0] + 1 == len(z) and 4 <= len(z) <= 16 and z[0] <= 16 <= z[-1]
        depths.add(len(z))
    assert depths == set(range(4, 17))  # every depth of the range occurs


def test_sampler_thin_slabs_are_the_share_of_the_cuts_asked_for() -> None:
    # a case larger than the patch, centred patches only: every blank slice is a cut
    case = _case()
    sampler = PatchSampler(
        [case], (16, 16, 24), batch_size=4, oversample_fg=1.0, partial_scan=1.0, thin_slab=0.5
    )
    rng = np.random.default_rng(3)
    both = 0
    for _ in range(100):
        images, _, pads = sampler.sample(rng)
        for b in range(4):
            blank = (images[b, 0] == pads[b]).all(axis=(0, 1))
            assert blank.any()
            both += int(blank[0] and blank[-1])
    assert 160 <= both <= 240  # half of 400 cuts
    # off: the stream of a run with one-sided cuts only is unchanged
    one = PatchSampler([case], (16, 16, 24), batch_size=3, partial_scan=0.4)
    off = PatchSampler([case], (16, 16, 24), batch_size=3, partial_scan=0.4, thin_slab=0.0)
    ra, rb = np.random.default_rng(6), np.random.default_rng(6)
    for _ in range(3):
        np.testing.assert_array_equal(one.sample(ra)[0], off.sample(rb)[0])


def test_config_checks_the_thin_slab_share() -> None:
    with pytest.raises(InputError, match="thin_slab must be"):
        make_config("default", partial_scan=0.2, thin_slab=-0.1)
    with pytest.raises(InputError, match="set partial_scan"):
        make_config("default", thin_slab=0.5)
    from lungspread.training.trainer import config_hash

    one = make_config("default", model="fast3d", partial_scan=0.3)
    assert config_hash(make_config("default", model="fast3d", partial_scan=0.3, thin_slab=0.0)) == (
        config_hash(one)
    )
    assert config_hash(make_config("default", model="fast3d", partial_scan=0.3, thin_slab=0.5)) != (
        config_hash(one)
    )
