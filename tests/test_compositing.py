import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import stats

from recombinet_hf import RecombineConfig, RecombineParams, load_dataset, set_epoch
from recombinet_hf.compositing import paste_foreground
from recombinet_hf.images import decode_image, to_rgb, to_rgba
from recombinet_hf.sampling import sample_generators, sample_geometry


def bar_foreground(length: int = 80, thickness: int = 12) -> Image.Image:
    """A horizontal opaque bar with a transparent margin."""
    image = Image.new("RGBA", (length + 8, thickness + 8), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((4, 4, 4 + length - 1, 4 + thickness - 1), fill=(250, 200, 0, 255))
    return image


def principal_axis_degrees(mask: np.ndarray) -> float:
    """Counter-clockwise angle (as displayed, y up) of the mask's principal axis, in (-90, 90]."""
    ys, xs = np.nonzero(mask > 127)
    x, y = xs - xs.mean(), -(ys - ys.mean())
    covariance = np.cov(np.stack([x, y]))
    values, vectors = np.linalg.eigh(covariance)
    vx, vy = vectors[:, np.argmax(values)]
    angle = math.degrees(math.atan2(vy, vx))
    return (angle + 90) % 180 - 90


@pytest.mark.parametrize("mode", ["range", "min", "max", "mean"])
def test_opaque_area_matches_target(big_release, mode):
    dataset = load_dataset(
        big_release, f"all-{mode}-pt1.0-sig0", split="train", return_mask=True, return_params=True, seed=1
    )
    errors = []
    epoch = 0
    while len(errors) < 200:
        set_epoch(dataset, epoch)
        for sample in dataset:
            width, height = sample["image"].size
            target = sample["params"]["target_area"] * width * height
            if target >= 32 * 32:
                area = np.asarray(sample["mask"], dtype=np.float64).sum() / 255
                errors.append(area / target - 1)
        epoch += 1
    errors = np.array(errors[:200])
    assert np.abs(errors).max() < 0.05, errors


def paste_positions(n: int, draws: int = 2000, canvas=(200, 200)):
    """Left/top offsets and centres of a 20x20 object pasted `draws` times with Bates(n)."""
    config = RecombineConfig(fg_bates_n=n, mask_smoothing_sigma=0, fg_scale_jitter=0)
    foreground = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    background = Image.new("RGB", canvas, (0, 0, 0))
    lefts, centres = [], []
    for index in range(draws):
        geometry = sample_geometry(sample_generators(0, 0, index)[1], config, fg_ratio=0.01, bg_ratio=0.01)
        _, mask = paste_foreground(background, foreground, RecombineParams(idx=index, **geometry))
        xs = np.nonzero(np.asarray(mask).max(axis=0))[0]
        lefts.append(xs.min() / (canvas[0] - (xs.max() - xs.min() + 1)))
        centres.append((xs.min() + xs.max() + 1) / 2 / canvas[0])
    return np.array(lefts), np.array(centres)


def test_position_bates_on_pixels():
    lefts, _ = paste_positions(1)
    assert stats.kstest(lefts, "uniform").pvalue > 0.01
    _, centres = paste_positions(8)
    assert centres.std() < 0.1
    _, centres = paste_positions(-4)
    assert np.abs(centres - 0.5).mean() > 0.3
    lefts, centres = paste_positions(0, draws=20)
    assert set(centres) == {0.5}


@pytest.mark.parametrize("angle", [-35.0, -10.0, 7.5, 20.0, 44.0])
def test_rotation_principal_axis(angle):
    background = Image.new("RGB", (300, 300), (0, 0, 0))
    params = RecombineParams(idx=0, target_area=0.02, angle=angle, position=(0.5, 0.5))
    _, mask = paste_foreground(background, bar_foreground(), params)
    assert abs(principal_axis_degrees(np.asarray(mask)) - angle) < 3


def test_sampled_rotation_reaches_the_pixels(big_release):
    dataset = load_dataset(big_release, "all-range-pt1.0-rot40-sig0", split="train", return_mask=True, return_params=True)
    # class 2 ("blue bar") is elongated 3:1, so its axis is well defined
    bars = [i for i, label in enumerate(dataset.with_format(None)["label"]) if label == 2]
    for i in bars:
        sample = dataset[i]
        measured = principal_axis_degrees(np.asarray(sample["mask"]))
        assert abs(measured - sample["params"]["angle"]) < 3


def test_soft_edges_keep_mass_and_soften():
    background = Image.new("RGB", (200, 200), (0, 0, 255))
    foreground = Image.new("RGBA", (40, 40), (255, 0, 0, 255))
    hard_image, hard = paste_foreground(background, foreground, RecombineParams(idx=0, target_area=0.04))
    soft_image, soft = paste_foreground(background, foreground, RecombineParams(idx=0, target_area=0.04, sigma=3.0))
    hard, soft = np.asarray(hard, dtype=float), np.asarray(soft, dtype=float)
    assert set(np.unique(hard)) == {0, 255}
    assert ((soft > 10) & (soft < 245)).sum() > 200  # a real ramp
    assert soft.sum() == pytest.approx(hard.sum(), rel=0.02)
    # The ramp mixes object colour into the background, not a dark halo.
    ramp = (soft > 20) & (soft < 235)
    pixels = np.asarray(soft_image, dtype=float)[ramp]
    assert (pixels[:, 0] + pixels[:, 2]).min() > 200


def test_jut_out_lets_the_object_leave_the_canvas():
    background = Image.new("RGB", (100, 100))
    foreground = Image.new("RGBA", (30, 30), (255, 255, 255, 255))
    _, mask = paste_foreground(background, foreground, RecombineParams(idx=0, target_area=0.09, position=(0.0, 0.0)), rel_jut_out=0.5)
    area = np.asarray(mask).sum() / 255
    assert area == pytest.approx(0.25 * 900, rel=0.05)  # a quarter of the object is left
    _, mask = paste_foreground(background, foreground, RecombineParams(idx=0, target_area=0.09, position=(0.0, 0.0)))
    assert np.asarray(mask).sum() / 255 == pytest.approx(900, rel=0.02)


def test_tiny_target_empty_alpha_and_oversized_foreground():
    background = Image.new("RGB", (64, 48), (10, 20, 30))
    opaque = Image.new("RGBA", (50, 50), (255, 0, 0, 255))
    image, mask = paste_foreground(background, opaque, RecombineParams(idx=0, target_area=1e-9))
    assert image.size == (64, 48) and np.asarray(mask).sum() <= 255
    empty = Image.new("RGBA", (50, 50), (255, 0, 0, 0))
    image, mask = paste_foreground(background, empty, RecombineParams(idx=0, target_area=0.2, sigma=2))
    assert np.asarray(mask).max() == 0
    assert np.array_equal(np.asarray(image), np.asarray(background))
    image, mask = paste_foreground(background, opaque, RecombineParams(idx=0, target_area=4.0, crop=(0.3, 0.9)))
    assert image.size == (64, 48)
    assert np.asarray(mask).min() == 255  # fills and is cropped to the canvas


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "LA", "I;16", "1", "RGBA"])
def test_any_input_mode_converts(mode):
    source = Image.new("RGB", (20, 10), (200, 100, 50))
    image = source.convert(mode) if mode != "I;16" else Image.fromarray(np.full((10, 20), 40000, dtype=np.uint16))
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    decoded = decode_image(buffer.getvalue(), key="k")
    rgb, rgba = to_rgb(decoded), to_rgba(decoded)
    assert rgb.mode == "RGB" and rgba.mode == "RGBA" and rgb.size == (20, 10)
    if mode == "CMYK":
        assert np.abs(np.asarray(rgb, dtype=int)[0, 0] - [200, 100, 50]).max() <= 2


@pytest.mark.parametrize("nonant", [0, 4, 8])
def test_nonant_hook_places_the_object_in_its_cell(nonant):
    config = RecombineConfig(mask_smoothing_sigma=0)
    background = Image.new("RGB", (300, 240))
    foreground = Image.new("RGBA", (30, 30), (255, 255, 255, 255))
    for index in range(30):
        geometry = sample_geometry(sample_generators(0, 0, index)[1], config, fg_ratio=0.2, bg_ratio=0.3, nonant=nonant)
        _, mask = paste_foreground(background, foreground, RecombineParams(idx=index, **geometry))
        ys, xs = np.nonzero(np.asarray(mask))
        column, row = nonant % 3, nonant // 3
        assert column * 100 <= xs.min() and xs.max() < (column + 1) * 100 + 1
        assert row * 80 <= ys.min() and ys.max() < (row + 1) * 80 + 1
        assert len(xs) == pytest.approx(geometry["target_area"] * 300 * 240, rel=0.05)


def test_size_factor_hook_scales_the_area():
    config = RecombineConfig(mask_smoothing_sigma=0, fg_scale_jitter=0, fg_size_mode="mean")
    base = sample_geometry(sample_generators(0, 0, 1)[1], config, fg_ratio=0.1, bg_ratio=0.1)
    doubled = sample_geometry(sample_generators(0, 0, 1)[1], config, fg_ratio=0.1, bg_ratio=0.1, size_factor=2.0)
    assert doubled["target_area"] == pytest.approx(2 * base["target_area"])
