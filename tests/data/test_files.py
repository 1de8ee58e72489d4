"""The user's own data: each kind of file written here, loaded back, checked against what was
written; one test per bad input and its message; a few training steps on each kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import interpolant as ip
from interpolant import data
from interpolant.errors import InterpolantError
from interpolant.models import MLP
from interpolant.training import train

RNG = np.random.default_rng(0)


def _pixels(n, h, w, c):
    return RNG.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def _write_images(folder, pixels, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(pixels):
        Image.fromarray(p[:, :, 0] if p.shape[2] == 1 else p).save(folder / f"im{i:02d}{suffix}")


def _scaled(pixels):
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def test_rgb_folder_with_class_subfolders(tmp_path):
    cats, dogs = _pixels(3, 6, 5, 3), _pixels(2, 6, 5, 3)
    _write_images(tmp_path / "dogs", dogs)
    _write_images(tmp_path / "cats", cats)
    (tmp_path / ".hidden").mkdir()
    x, labels = data.load(str(tmp_path))
    assert x.shape == (5, 3, 6, 5) and x.dtype == torch.float32
    torch.testing.assert_close(x, _scaled(np.concatenate([cats, dogs])))  # PNG is lossless
    assert labels.tolist() == [0, 0, 0, 1, 1]  # sorted class names: cats, dogs


def test_gray_folder_without_labels_and_forced_channels(tmp_path):
    gray = _pixels(4, 5, 5, 1)
    _write_images(tmp_path, gray)
    x, labels = data.load(tmp_path)
    assert labels is None and x.shape == (4, 1, 5, 5)
    torch.testing.assert_close(x, _scaled(gray))
    rgb, _ = data.load(tmp_path, channels=3)
    torch.testing.assert_close(rgb, _scaled(gray).expand(4, 3, 5, 5))


def test_sixteen_bit_png(tmp_path):
    deep = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    x, _ = data.load(tmp_path)
    torch.testing.assert_close(x[0, 0], torch.from_numpy(deep / 32767.5 - 1).float())


def test_mixed_gray_and_rgb_become_rgb_and_jpeg_loads(tmp_path):
    _write_images(tmp_path, _pixels(1, 8, 8, 1))
    _write_images(tmp_path / "x", [])  # an empty subfolder is not a class
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "z.jpg", quality=95)
    x, labels = data.load(tmp_path)
    assert x.shape == (2, 3, 8, 8) and labels is None
    assert (x[1] - (200 / 127.5 - 1)).abs().max() < 0.05  # JPEG of a flat colour


def test_size_resizes_and_centre_crops(tmp_path):
    flat = np.zeros((10, 20, 3), np.uint8)
    flat[:, 7:13] = 255  # 10x20 -> 4x8, band at columns 2.8..5.2, crop columns 2..6
    Image.fromarray(flat).save(tmp_path / "wide.png")
    Image.fromarray(np.full((4, 4, 3), 255, np.uint8)).save(tmp_path / "small.png")
    x, _ = data.load(f"{tmp_path}:size=4")
    assert x.shape == (2, 3, 4, 4)
    torch.testing.assert_close(x[0], torch.ones(3, 4, 4))  # small.png, sorted first
    assert torch.all(x[1, :, :, 1:3] > 0.9)  # the centre of the band
    assert torch.all(x[1, :, :, 1:3] > x[1, :, :, ::3] + 0.3)  # brighter than the crop edges
    assert data.load(tmp_path, size=(3, 5))[0].shape == (2, 3, 3, 5)


ARRAYS = {
    "images_uint8": (_pixels(6, 4, 4, 3), _scaled),  # channels-last pixels
    "rows_float": (RNG.normal(size=(6, 3)), lambda a: torch.from_numpy(a).float()),
}


@pytest.mark.parametrize("kind", ["npy", "npz", "safetensors", "pt", "pt-pair"])
@pytest.mark.parametrize("content", list(ARRAYS))
def test_array_files_round_trip(tmp_path, kind, content):
    array, expected = ARRAYS[content]
    labels = np.arange(6) % 3
    file = tmp_path / f"d.{kind.split('-')[0]}"
    t, tl = torch.from_numpy(array), torch.from_numpy(labels)
    if kind == "npy":
        np.save(file, array)
    elif kind == "npz":
        np.savez(file, images=array, y=labels)
    elif kind == "safetensors":
        save_file({"x": t.contiguous(), "labels": tl}, str(file))
    elif kind == "pt":
        torch.save({"data": t, "targets": tl}, file)
    else:
        torch.save((t, tl), file)
    x, got = data.load(str(file))
    torch.testing.assert_close(x, expected(array))
    assert got is None if kind == "npy" else got.tolist() == labels.tolist()


def test_csv_with_header_named_labels_and_n(tmp_path):
    file = tmp_path / "iris.csv"
    file.write_text("a,species,b\n1.5,setosa,2\n-3,virginica,4e-1\n0,setosa,7\n\n")
    x, labels = data.load(f"{file}:label=species")
    torch.testing.assert_close(x, torch.tensor([[1.5, 2.0], [-3.0, 0.4], [0.0, 7.0]]))
    assert labels.tolist() == [0, 1, 0]
    x2, labels2 = data.load(file, n=2, label="species", seed=4)
    keep = torch.randperm(3, generator=torch.Generator().manual_seed(4))[:2].sort().values
    assert torch.equal(x2, x[keep]) and torch.equal(labels2, labels[keep])
    with pytest.raises(InterpolantError, match="n must be at most 3"):
        data.load(file, n=4, label="species")


def test_csv_without_header_and_label_column_by_default(tmp_path):
    (tmp_path / "p.csv").write_text("1,2\n3,4\n")
    x, labels = data.load(tmp_path / "p.csv")
    assert x.tolist() == [[1, 2], [3, 4]] and labels is None
    (tmp_path / "q.csv").write_text("x,label\n1,3\n2,0\n")
    x, labels = data.load(tmp_path / "q.csv")
    assert x.tolist() == [[1], [2]] and labels.tolist() == [3, 0]


def _bad(tmp_path, name):
    """Write one bad input; return the string to load."""
    if name == "mixed sizes":
        _write_images(tmp_path, _pixels(1, 4, 4, 3))
        Image.fromarray(_pixels(1, 5, 4, 3)[0]).save(tmp_path / "other.png")
    elif name == "empty folder":
        (tmp_path / "sub").mkdir()
    elif name == "images beside classes":
        _write_images(tmp_path, _pixels(1, 4, 4, 3))
        _write_images(tmp_path / "a", _pixels(1, 4, 4, 3))
    elif name == "non-numeric column":
        (tmp_path / "d.csv").write_text("a,b\n1,2\n\n3,red\n")
        return str(tmp_path / "d.csv")
    elif name == "labels do not match":
        np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)), labels=np.zeros(4, np.int64))
        return str(tmp_path / "d.npz")
    elif name == "negative labels":
        torch.save((torch.zeros(2, 2), torch.tensor([0, -1])), tmp_path / "d.pt")
        return str(tmp_path / "d.pt")
    elif name == "nan":
        x = np.zeros((4, 2))
        x[2, 1] = np.nan
        np.save(tmp_path / "d.npy", x)
        return str(tmp_path / "d.npy")
    elif name == "float images out of range":
        np.save(tmp_path / "d.npy", np.full((2, 1, 4, 4), 255.0))
        return str(tmp_path / "d.npy")
    elif name == "pickled object":
        torch.save({"x": torch.zeros(2, 2), "f": ip.paths.Linear()}, tmp_path / "d.pt")
        return str(tmp_path / "d.pt")
    elif name == "unknown suffix":
        (tmp_path / "d.txt").write_text("1\n")
        return str(tmp_path / "d.txt")
    elif name == "bad option":
        _write_images(tmp_path, _pixels(1, 4, 4, 3))
        return f"{tmp_path}:sise=3"
    return str(tmp_path)


BAD = {
    "mixed sizes": r"different sizes \(im00.png is 4x4, other.png is 5x4\); pass a size",
    "empty folder": "holds no PNG or JPEG images",
    "images beside classes": "both directly and in class subfolders",
    "non-numeric column": r"column 'b' is not numeric \(line 4: 'red'\)",
    "labels do not match": r"labels .* have shape \(4,\) but there are 5 samples",
    "negative labels": "must be >= 0, found -1",
    "nan": r"1 NaN or infinite value\(s\) \(first in sample 2\)",
    "float images out of range": r"must lie in \[-1, 1\], found values in \[255, 255\]",
    "pickled object": r"weights_only=True\): it holds objects other than tensors",
    "unknown suffix": "unknown kind '.txt'",
    "bad option": "cannot read the data option 'sise=3'",
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gives_one_line_error(tmp_path, name):
    with pytest.raises(InterpolantError, match=BAD[name]) as info:
        data.load(_bad(tmp_path, name))
    assert "\n" not in str(info.value)


def test_unknown_name_still_lists_the_data_sets():
    with pytest.raises(InterpolantError, match="unknown data set 'mnis'.*digits.*path of a file"):
        data.load("mnis")
    with pytest.raises(InterpolantError, match="apply to files and folders"):
        data.load("moons", size=3)


class _Flat(torch.nn.Module):
    """A tiny MLP on flattened images (the reference MLP takes rows)."""

    def __init__(self, shape, classes):
        super().__init__()
        self.shape, self.net = shape, MLP(int(np.prod(shape)), hidden=16, depth=1,
                                          num_classes=classes)

    def forward(self, x, t, cond=None):
        return self.net(x.flatten(1), t, cond).view(-1, *self.shape)


@pytest.mark.parametrize("kind", ["folder", "npy", "npz", "safetensors", "pt", "csv"])
def test_three_training_steps_on_each_kind(tmp_path, kind):
    pixels, labels = _pixels(8, 4, 4, 3), np.arange(8) % 2
    if kind == "folder":
        _write_images(tmp_path / "a", pixels[:4])
        _write_images(tmp_path / "b", pixels[4:])
        source = str(tmp_path)
    elif kind == "csv":
        rows = "\n".join(f"{i},{i % 3 - 1.5},{i % 2}" for i in range(8))
        (tmp_path / "d.csv").write_text("u,v,label\n" + rows + "\n")
        source = str(tmp_path / "d.csv")
    else:
        file = tmp_path / f"d.{kind}"
        {"npy": lambda: np.save(file, pixels),
         "npz": lambda: np.savez(file, x=pixels, labels=labels),
         "safetensors": lambda: save_file({"x": torch.from_numpy(pixels)}, str(file)),
         "pt": lambda: torch.save((torch.from_numpy(pixels), torch.from_numpy(labels)), file),
         }[kind]()
        source = str(file)
    x, y = data.load(source)
    classes = None if y is None else int(y.max()) + 1
    torch.manual_seed(0)
    net = _Flat(tuple(x.shape[1:]), classes)
    result = train(net, ip.paths.Linear(), x, y, target="velocity", steps=3, batch_size=4,
                   num_classes=classes,
                   progress=False, log_every=1)
    assert len(result.history) == 3 and all(np.isfinite(r["loss"]) for r in result.history)
