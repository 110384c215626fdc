"""Mask dilation and the `telea` / `lama` inpainters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from recombinet_builder.backends import INPAINTERS, Inpainter
from recombinet_builder.inpaint import default_dilation_radius, dilate_mask


# ---------------------------------------------------------------- dilate_mask


def test_dilate_mask_grows_by_the_radius():
    mask = np.zeros((41, 41), dtype=bool)
    mask[20, 20] = True
    grown = dilate_mask(mask, 5)
    assert grown.dtype == bool and mask.sum() == 1  # pure
    yy, xx = np.mgrid[:41, :41]
    assert np.array_equal(grown, (yy - 20) ** 2 + (xx - 20) ** 2 <= 25)  # exact Euclidean disk
    assert grown[20, 25] and not grown[20, 26] and grown[23, 24] and not grown[24, 24]

    square = np.zeros((60, 80), dtype=bool)
    square[20:30, 30:45] = True
    grown = dilate_mask(square, 4)
    rows, cols = np.nonzero(grown)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 33, 26, 48)
    assert grown[square].all()


def test_dilate_mask_default_radius_and_edge_cases():
    assert default_dilation_radius(512, 512) == 11
    assert default_dilation_radius(20, 20) == 3  # floor
    mask = np.zeros((512, 512), dtype=bool)
    mask[256, 256] = True
    assert dilate_mask(mask)[256, 256 + 11] and not dilate_mask(mask)[256, 256 + 12]
    empty = np.zeros((9, 9), dtype=bool)
    assert not dilate_mask(empty, 3).any()
    assert np.array_equal(dilate_mask(mask, 0), mask)
    assert dilate_mask(mask.astype(np.uint8), 2).sum() == 13  # 0/1 numbers are accepted
    with pytest.raises(ValueError, match="radius"):
        dilate_mask(mask, -1)
    with pytest.raises(ValueError, match="2-D"):
        dilate_mask(np.zeros((3, 3, 3), dtype=bool), 1)


# ---------------------------------------------------------------- telea


def _gradient_with_red_square(height=96, width=128):
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    background = np.stack([40 + xx, 60 + yy, 200 - 0.5 * xx - 0.5 * yy], axis=-1).round().astype(np.uint8)
    image = background.copy()
    square = np.zeros((height, width), dtype=bool)
    square[36:60, 50:80] = True
    image[square] = (255, 0, 0)
    return image, background, square


def test_telea_fills_the_square_with_the_surrounding_colour():
    image, background, square = _gradient_with_red_square()
    inpainter = INPAINTERS.create("telea")
    assert isinstance(inpainter, Inpainter) and inpainter.name == "telea"
    assert inpainter.version["backend"] == "telea" and inpainter.version["radius"] == 5
    hole = dilate_mask(square, 3)
    out = inpainter.inpaint(Image.fromarray(image), hole)
    assert out.mode == "RGB" and out.size == (128, 96)
    result = np.asarray(out)
    assert np.array_equal(result[~hole], image[~hole])  # outside: untouched
    inside = result[hole].astype(int)
    assert np.abs(result[square].astype(int) - image[square]).max(axis=1).min() > 100  # no red survives
    assert np.abs(inside - background[hole]).mean() < 6  # close to the gradient
    # an empty mask returns the image unchanged
    assert np.array_equal(np.asarray(inpainter.inpaint(Image.fromarray(image), np.zeros((96, 128), bool))), image)


def test_telea_errors_name_the_problem():
    with pytest.raises(ValueError, match="radius"):
        INPAINTERS.create("telea", radius=0)
    with pytest.raises(ValueError, match="allowed: \\['radius'\\]"):
        INPAINTERS.create("telea", method="ns")
    with pytest.raises(ValueError, match="does not match"):
        INPAINTERS.create("telea").inpaint(Image.new("RGB", (10, 8)), np.zeros((10, 8), dtype=bool))


# ---------------------------------------------------------------- lama (contract, with a tiny scripted model)


class MeanFill(torch.nn.Module):
    """Obeys the LaMa contract: fills the mask with the mean colour of the unmasked pixels."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if image.shape[2] % 8 != 0 or image.shape[3] % 8 != 0:
            raise RuntimeError("input not padded to a multiple of 8")
        if mask.shape[1] != 1 or image.shape[1] != 3:
            raise RuntimeError("bad channels")
        keep = 1.0 - mask
        mean = (image * keep).sum(dim=(2, 3), keepdim=True) / keep.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        return image * keep + mean * mask


class WrongShape(torch.nn.Module):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image[:, :, :8, :8]


@pytest.fixture()
def mean_fill_path(tmp_path):
    path = tmp_path / "mean_fill.pt"
    torch.jit.script(MeanFill()).save(str(path))
    return path


def test_lama_pads_odd_sizes_crops_back_and_keeps_outside(mean_fill_path):
    inpainter = INPAINTERS.create("lama", model_path=mean_fill_path, device="cpu")
    assert isinstance(inpainter, Inpainter) and inpainter.name == "lama"
    assert inpainter.version["backend"] == "lama" and len(inpainter.version["sha256"]) == 64
    assert inpainter.version["model"] == "mean_fill.pt"

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)  # H=37, W=53: both padded
    mask = np.zeros((37, 53), dtype=bool)
    mask[10:20, 30:45] = True
    out = inpainter.inpaint(Image.fromarray(image), mask)
    assert out.mode == "RGB" and out.size == (53, 37)
    result = np.asarray(out)
    assert np.array_equal(result[~mask], image[~mask])
    fill = result[mask]
    assert (fill == fill[0]).all()  # one colour ...
    assert np.abs(fill[0].astype(float) - image[~mask].mean(axis=0)).max() < 4  # ... the unmasked mean


def test_lama_constant_background_and_tiny_image(mean_fill_path):
    inpainter = INPAINTERS.create("lama", model_path=mean_fill_path)  # device="auto"
    image = np.full((37, 53, 3), (20, 120, 220), dtype=np.uint8)
    mask = np.zeros((37, 53), dtype=bool)
    mask[5:15, 5:15] = True
    image[mask] = (255, 0, 0)
    result = np.asarray(inpainter.inpaint(Image.fromarray(image), mask))
    assert (result == (20, 120, 220)).all()
    tiny = np.full((3, 5, 3), 50, dtype=np.uint8)  # too small for reflect padding
    tiny_mask = np.zeros((3, 5), dtype=bool)
    tiny_mask[1, 2] = True
    tiny[1, 2] = 255
    assert (np.asarray(inpainter.inpaint(Image.fromarray(tiny), tiny_mask)) == 50).all()


def test_lama_errors(mean_fill_path, tmp_path):
    bad = tmp_path / "wrong_shape.pt"
    torch.jit.script(WrongShape()).save(str(bad))
    mask = np.zeros((16, 16), dtype=bool)
    mask[4:8, 4:8] = True
    with pytest.raises(RuntimeError, match="contract"):
        INPAINTERS.create("lama", model_path=bad).inpaint(Image.new("RGB", (16, 16)), mask)
    with pytest.raises(ValueError, match="either option `model_path`"):
        INPAINTERS.create("lama", model_path=mean_fill_path, repo_id="x/y")
    with pytest.raises(FileNotFoundError, match="model_path"):
        INPAINTERS.create("lama", model_path=tmp_path / "missing.pt")
    not_torchscript = tmp_path / "junk.pt"
    not_torchscript.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="TorchScript"):
        INPAINTERS.create("lama", model_path=not_torchscript)
    with pytest.raises(ValueError, match="allowed"):
        INPAINTERS.create("lama", path=mean_fill_path)
