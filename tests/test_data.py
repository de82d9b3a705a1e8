"""Data loading: tiny copies of the real on-disk formats round-trip exactly; bad roots fail early."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import sqsp.data as data
from sqsp import digits, validation
from sqsp.data import DatasetLayoutError, ImageData, channel_stats, load_split


# ---------------------------------------------------------------------------------------------
# Writers for the real formats

def _rng_images(seed, n, size):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)


def _pickle(path, obj):
    # The official batches were pickled by Python 2, whose str keys torchvision reads back as
    # str (encoding="latin1"); Python 3 str keys load the same way.
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, n_per_batch=4, n_test=5):
    folder = root / "CIFAR10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = [], []
    for b in range(1, 6):
        x = _rng_images(b, n_per_batch, 32)
        y = [(b * 3 + i) % 10 for i in range(n_per_batch)]
        # Rows are 3072 bytes: the 1024 red values (row-major 32x32), then green, then blue.
        _pickle(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5",
                                             "data": x.reshape(n_per_batch, 3072), "labels": y,
                                             "filenames": [f"img{i}.png" for i in range(n_per_batch)]})
        train_x.append(x), train_y.extend(y)
    tx = _rng_images(99, n_test, 32)
    ty = [i % 10 for i in range(n_test)]
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": tx.reshape(n_test, 3072),
                                    "labels": ty, "filenames": [f"t{i}.png" for i in range(n_test)]})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": 4,
                                      "num_vis": 3072})
    return np.concatenate(train_x), np.array(train_y), tx, np.array(ty)


def write_cifar100(root, n_train=6, n_test=3):
    folder = root / "CIFAR100" / "cifar-100-python"
    folder.mkdir(parents=True)
    x, tx = _rng_images(1, n_train, 32), _rng_images(2, n_test, 32)
    y, ty = [99 - 7 * i for i in range(n_train)], [5 * i for i in range(n_test)]
    _pickle(folder / "train", {"data": x.reshape(n_train, -1), "fine_labels": y, "coarse_labels": [0] * n_train})
    _pickle(folder / "test", {"data": tx.reshape(n_test, -1), "fine_labels": ty, "coarse_labels": [0] * n_test})
    _pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                              "coarse_label_names": [f"s{i}" for i in range(20)]})
    return x, np.array(y), tx, np.array(ty)


def write_stl10(root, n_train=4, n_test=3, n_unlabeled=5):
    folder = root / "STL10" / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for seed, (part, n) in enumerate((("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled))):
        x = _rng_images(seed + 10, n, 96)
        # The binary files store each channel column-major (as MATLAB wrote them).
        x.transpose(0, 1, 3, 2).tofile(folder / f"{part}_X.bin")
        y = None
        if part != "unlabeled":
            y = (np.arange(n) * 7 + seed) % 10 + 1                     # 1..10 on disk
            y.astype(np.uint8).tofile(folder / f"{part}_y.bin")
        out[part] = (x, y)
    return out


def write_imagefolder(root, size=12):
    rng = np.random.default_rng(0)
    truth = {}
    for split in ("train", "val"):
        for c in ("cat", "dog", "emu"):
            (root / split / c).mkdir(parents=True)
            for i in range(2 if split == "train" else 1):
                hwc = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(hwc).save(root / split / c / f"{i}.png")
                truth.setdefault(split, []).append((hwc.transpose(2, 0, 1), c))
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    # a non-square, larger image to exercise resize + center crop
    Image.fromarray(rng.integers(0, 256, size=(30, 20, 3), dtype=np.uint8)).save(root / "train" / "emu" / "big.jpg")
    return truth


# ---------------------------------------------------------------------------------------------
# digits

def test_digits_split_sizes_values_and_determinism():
    from sklearn.datasets import load_digits
    train = load_split("digits", None, "train", 8)
    test = load_split("digits", None, "test", 8)
    assert (len(train), len(test)) == (1347, 450)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.num_classes == 10 and train.name == "digits"
    # stratified: every class in both splits in roughly equal proportion
    counts = torch.bincount(test.labels, minlength=10)
    assert counts.min() >= 40 and counts.max() <= 50
    # pixel values: 0..16 scaled to 0..255, same on all three channels; splits partition the set
    d = load_digits()
    assert torch.equal(train.images[:, 0], train.images[:, 2])
    ref = {(bytes(np.rint(img * 255 / 16).astype(np.uint8).ravel()), int(t)) for img, t in zip(d.images, d.target)}
    got = {(bytes(img[0].numpy().ravel()), int(t)) for img, t in zip(torch.cat([train.images, test.images]),
                                                                     torch.cat([train.labels, test.labels]))}
    assert got == ref
    assert int(train.images.max()) == 255
    again = load_split("digits", None, "train", 8)
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    pre = load_split("digits", None, "pretrain", 8)
    assert torch.equal(pre.images, train.images)


def test_digits_resize_and_no_shared_state():
    a = load_split("digits", None, "train", 16)
    assert a.images.shape == (1347, 3, 16, 16)
    a.images.zero_()
    a.labels.fill_(3)
    b = load_split("digits", None, "train", 16)
    assert b.images.float().mean() > 20 and len(b.labels.unique()) == 10


# ---------------------------------------------------------------------------------------------
# digits-m (the embedded default)

def test_digits_m_is_deterministic_from_disjoint_scans():
    train = load_split("digits-m", None, "train", 32)
    test = load_split("digits-m", None, "test", 32)
    n = digits.DIGITS_M_PATCHES
    assert (len(train), len(test)) == (1347 * n, 450 * n) and train.num_classes == 10 and train.name == "digits-m"
    scans_train, scans_test = digits.digits_m_scans("train"), digits.digits_m_scans("test")
    assert not set(scans_train.tolist()) & set(scans_test.tolist())  # no scan in both splits
    # every image shows the digit of its scan, on a patch: labels follow the scans, and the
    # same scan on different patches gives different images
    plain = load_split("digits", None, "train", 8)
    assert torch.equal(train.labels[:1347], plain.labels) and torch.equal(train.labels[1347:2694], plain.labels)
    assert (train.images[:1347] != train.images[1347:2694]).flatten(1).any(1).all()
    # colour varies across the channels and between images, unlike the grey scans
    assert (train.images[:, 0] != train.images[:, 2]).any()
    # built again from scratch (no cache): the same bytes
    digits._digits_m_arrays.cache_clear()
    again = load_split("digits-m", None, "train", 32)
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    # the test split does not depend on the train split having been built
    digits._digits_m_arrays.cache_clear()
    assert torch.equal(load_split("digits-m", None, "test", 32).images, test.images)


def test_area_crops_match_adaptive_average_pooling():
    photo = torch.rand(3, 50, 70)
    top, left, side = torch.tensor([0, 3, 10]), torch.tensor([0, 20, 31]), torch.tensor([16, 29, 39])
    got = digits._area_crops(photo, top, left, side, 16)
    for i in range(3):
        crop = photo[None, :, top[i]:top[i] + side[i], left[i]:left[i] + side[i]]
        assert torch.allclose(got[i], torch.nn.functional.adaptive_avg_pool2d(crop, 16)[0], atol=1e-5)


def test_digits_m_floor_is_low_where_plain_digits_is_not():
    """The reason for digits-m: raw pixels separate plain digits almost perfectly, and a linear
    probe on raw digits-m pixels stays at most 70 % (the measured value is ~68 %)."""
    from sqsp.pixel_reference import pixel_reference
    plain = pixel_reference("digits", None, 16, knn_k=20, knn_t=0.1)
    hard = pixel_reference("digits-m", None, 16, knn_k=20, knn_t=0.1)
    assert plain["raw_probe_acc"] > 95
    assert 40 < hard["raw_probe_acc"] <= 70


def test_resize_matches_torch_interpolate_on_a_chunk_boundary():
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    got = data.resize_uint8(x, 20, chunk=2)
    ref = torch.nn.functional.interpolate(x.float(), size=(20, 20), mode="bilinear", antialias=True,
                                          align_corners=False).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(got, ref)


def test_channel_stats():
    mean, std = channel_stats("digits")
    x = load_split("digits", None, "train", 8).images.double() / 255
    assert np.allclose(mean, x.mean(dim=(0, 2, 3)).numpy()) and np.allclose(std, x.std(dim=(0, 2, 3)).numpy())
    assert channel_stats("imagefolder") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    for name in ("cifar10", "cifar100", "stl10"):
        m, s = channel_stats(name)
        assert len(m) == len(s) == 3 and all(0.3 < v < 0.6 for v in m) and all(0.2 < v < 0.3 for v in s)
    with pytest.raises(ValueError, match="mnist"):
        channel_stats("mnist")


def test_unknown_dataset_and_split_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"'mnist'.*cifar10"):
        load_split("mnist", None, "train", 32)
    with pytest.raises(ValueError, match=r"'val'.*pretrain"):
        load_split("digits", None, "val", 32)


def test_image_data_checks_its_contract():
    with pytest.raises(ValueError, match="uint8"):
        ImageData(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), 10, "x")
    with pytest.raises(ValueError, match="int64"):
        ImageData(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), 10, "x")


# ---------------------------------------------------------------------------------------------
# CIFAR

def test_cifar10_round_trip(tmp_path):
    x, y, tx, ty = write_cifar10(tmp_path)
    train = load_split("cifar10", str(tmp_path), "train", 32)
    assert train.images.shape == (20, 3, 32, 32) and train.num_classes == 10
    assert np.array_equal(train.images.numpy(), x) and np.array_equal(train.labels.numpy(), y)
    assert train.images.is_contiguous()
    test = load_split("cifar10", str(tmp_path), "test", 32)
    assert np.array_equal(test.images.numpy(), tx) and np.array_equal(test.labels.numpy(), ty)
    pre = load_split("cifar10", str(tmp_path), "pretrain", 32)
    assert torch.equal(pre.images, train.images)
    small = load_split("cifar10", str(tmp_path), "train", 16)
    assert small.images.shape == (20, 3, 16, 16)
    assert torch.equal(small.images, data.resize_uint8(train.images, 16))


def test_cifar100_round_trip(tmp_path):
    x, y, tx, ty = write_cifar100(tmp_path)
    train = load_split("cifar100", str(tmp_path), "train", 32)
    test = load_split("cifar100", str(tmp_path), "test", 32)
    assert train.num_classes == 100
    assert np.array_equal(train.images.numpy(), x) and np.array_equal(train.labels.numpy(), y)
    assert np.array_equal(test.images.numpy(), tx) and np.array_equal(test.labels.numpy(), ty)


def test_missing_cifar_root_shows_layout_and_path(tmp_path):
    with pytest.raises(DatasetLayoutError) as e:
        load_split("cifar10", str(tmp_path), "train", 32)
    msg = str(e.value)
    assert "cifar-10-batches-py" in msg and "data_batch_1" in msg and str(tmp_path.resolve()) in msg
    with pytest.raises(DatasetLayoutError, match="CIFAR100"):
        load_split("cifar100", str(tmp_path / "nope"), "test", 32)
    with pytest.raises(DatasetLayoutError, match="not a directory"):
        load_split("cifar10", None, "train", 32)


def test_cifar_missing_batch_fails_before_loading(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    (tmp_path / "CIFAR10" / "cifar-10-batches-py" / "data_batch_3").unlink()

    def boom(*a, **k):
        raise AssertionError("a batch was unpickled before the layout check")
    monkeypatch.setattr(data, "read_cifar_pickle", boom)
    with pytest.raises(DatasetLayoutError, match="data_batch_3"):
        load_split("cifar10", str(tmp_path), "train", 32)
    # the test split does not need the train batches
    monkeypatch.undo()
    assert len(load_split("cifar10", str(tmp_path), "test", 32)) == 5


def test_cifar_root_pointing_at_dataset_folder_gets_a_hint(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(DatasetLayoutError, match="pass its parent"):
        load_split("cifar10", str(tmp_path / "CIFAR10"), "train", 32)


def test_malformed_cifar_batch(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "CIFAR10" / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(DatasetLayoutError, match="malformed") as e:
        load_split("cifar10", str(tmp_path), "test", 32)
    assert "batches.meta" in str(e.value)


class _Payload:
    """What a crafted batch holds: unpickling it runs ``os.system`` (creates ``marker``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["data", "whole"])
def test_crafted_cifar_pickle_runs_no_code(tmp_path, where):
    write_cifar10(tmp_path)
    folder = tmp_path / "CIFAR10" / "cifar-10-batches-py"
    marker = tmp_path / "marker"
    payload = _Payload(marker)
    _pickle(folder / "data_batch_2", {"data": payload, "labels": [1]} if where == "data" else payload)
    with pytest.raises(DatasetLayoutError) as e:
        load_split("cifar10", str(tmp_path), "train", 32)
    msg = str(e.value)
    assert not marker.exists()
    assert "data_batch_2" in msg and "posix.system" in msg and "refusing" in msg
    # the file is effective: a plain unpickler (what torchvision uses) runs it
    with open(folder / "data_batch_2", "rb") as f:
        pickle.load(f, encoding="latin1")
    assert marker.exists()


def test_cifar_pickles_of_every_numpy_and_protocol_load(tmp_path):
    """Files as numpy 1 (numpy.core...) or 2 (numpy._core...) wrote them, at protocols 2-5."""
    x, y, tx, ty = write_cifar10(tmp_path)
    folder = tmp_path / "CIFAR10" / "cifar-10-batches-py"
    for protocol in (2, 3, 4, 5):
        for name in ("numpy._core", "numpy.core"):
            blob = pickle.dumps({"batch_label": "testing batch 1 of 1", "data": tx.reshape(len(tx), -1),
                                 "labels": list(ty)}, protocol=protocol)
            if protocol <= 3:  # text GLOBAL opcodes: rename the module as numpy 1 spelled it
                blob = blob.replace(b"numpy._core.", name.encode() + b".")
            (folder / "test_batch").write_bytes(blob)
            test = load_split("cifar10", str(tmp_path), "test", 32)
            assert torch.equal(test.images, torch.from_numpy(tx)) and test.labels.tolist() == ty.tolist()


def test_check_layout_is_cheap_and_names_the_problem(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    monkeypatch.setattr(data, "read_cifar_pickle", lambda *a: pytest.fail("check_layout read a batch"))
    data.check_layout("cifar10", str(tmp_path), ["train", "test"])
    data.check_layout("digits", None)
    data.check_layout("digits-m", None)
    (tmp_path / "CIFAR10" / "cifar-10-batches-py" / "test_batch").unlink()
    data.check_layout("cifar10", str(tmp_path), ["train"])
    with pytest.raises(DatasetLayoutError, match="test_batch"):
        data.check_layout("cifar10", str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="not a directory"):
        data.check_layout("stl10", str(tmp_path / "nope"))


# ---------------------------------------------------------------------------------------------
# STL-10

def test_stl10_round_trip(tmp_path):
    truth = write_stl10(tmp_path)
    train = load_split("stl10", str(tmp_path), "train", 96)
    x, y = truth["train"]
    assert np.array_equal(train.images.numpy(), x) and np.array_equal(train.labels.numpy(), y - 1)
    test = load_split("stl10", str(tmp_path), "test", 96)
    assert np.array_equal(test.images.numpy(), truth["test"][0])
    assert np.array_equal(test.labels.numpy(), truth["test"][1] - 1)
    pre = load_split("stl10", str(tmp_path), "pretrain", 96)
    assert np.array_equal(pre.images.numpy(), np.concatenate([x, truth["unlabeled"][0]]))
    assert pre.labels.tolist() == (y - 1).tolist() + [-1] * 5
    small = load_split("stl10", str(tmp_path), "pretrain", 64)
    assert small.images.shape == (9, 3, 64, 64) and torch.equal(small.images, data.resize_uint8(pre.images, 64))


def test_stl10_malformed_and_missing(tmp_path):
    write_stl10(tmp_path)
    folder = tmp_path / "STL10" / "stl10_binary"
    with open(folder / "test_X.bin", "ab") as f:
        f.write(b"\0" * 100)
    with pytest.raises(DatasetLayoutError, match="multiple of") as e:
        load_split("stl10", str(tmp_path), "test", 96)
    assert "unlabeled_X.bin" in str(e.value)                     # the layout is shown
    np.array([0, 1, 2, 3], dtype=np.uint8).tofile(folder / "train_y.bin")  # 0 is not a valid label
    with pytest.raises(DatasetLayoutError, match="1..10"):
        load_split("stl10", str(tmp_path), "train", 96)
    (folder / "unlabeled_X.bin").unlink()
    with pytest.raises(DatasetLayoutError, match="unlabeled_X.bin"):
        load_split("stl10", str(tmp_path), "pretrain", 96)


# ---------------------------------------------------------------------------------------------
# image folders

def test_imagefolder_round_trip_and_resize(tmp_path):
    truth = write_imagefolder(tmp_path, size=12)
    test = load_split("imagefolder", str(tmp_path), "test", 12)
    assert test.num_classes == 3 and test.images.shape == (3, 3, 12, 12)
    for (img, c), got, lab in zip(truth["val"], test.images, test.labels):
        assert np.array_equal(got.numpy(), img) and ["cat", "dog", "emu"][lab] == c
    train = load_split("imagefolder", str(tmp_path), "train", 8)
    assert train.images.shape == (7, 3, 8, 8)                    # notes.txt skipped, big.jpg cropped
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_imagefolder_layout_errors(tmp_path):
    write_imagefolder(tmp_path)
    with pytest.raises(DatasetLayoutError, match=r"train/") as e:
        load_split("imagefolder", str(tmp_path / "val"), "train", 8)
    assert "<class_a>" in str(e.value)
    (tmp_path / "val" / "dog" / "0.png").rename(tmp_path / "val" / "0.png")
    (tmp_path / "val" / "dog").rmdir()
    with pytest.raises(DatasetLayoutError, match="differ"):
        load_split("imagefolder", str(tmp_path), "test", 8)


# ---------------------------------------------------------------------------------------------
# validation split


def test_digits_m_validation_is_disjoint_from_probe_train_and_test_by_scan():
    """The validation split of the default data set: stratified, fixed, and by scan, so no digit
    scan is both fitted by the probe (on another background) and validated on; test shares no
    scan with either (and no image)."""
    train, test = load_split("digits-m", None, "train", 16), load_split("digits-m", None, "test", 16)
    groups = validation.split_groups("digits-m", "train")
    fit, val = validation.validation_split(train.labels, 0.2, groups)
    assert sorted(torch.cat([fit, val]).tolist()) == list(range(len(train)))  # a partition of the train images
    scans = {"fit": set(groups[fit].tolist()), "val": set(groups[val].tolist()),
             "test": set(digits.digits_m_scans("test").tolist())}
    assert not scans["fit"] & scans["val"] and not scans["val"] & scans["test"] and not scans["fit"] & scans["test"]
    # every scan of val is there on all its backgrounds
    assert len(val) == digits.DIGITS_M_PATCHES * len(scans["val"])
    val_images = {bytes(x.numpy()) for x in train.images[val]}
    assert not val_images & {bytes(x.numpy()) for x in test.images}
    assert not val_images & {bytes(x.numpy()) for x in train.images[fit]}
    # stratified: each class's share of val is the split's share, within one scan
    per_class = torch.bincount(train.labels[val], minlength=10) / digits.DIGITS_M_PATCHES
    total = torch.bincount(train.labels, minlength=10) / digits.DIGITS_M_PATCHES
    assert ((per_class - 0.2 * total).abs() <= 1).all()
    again = validation.validation_split(load_split("digits-m", None, "train", 16).labels, 0.2, groups)
    assert torch.equal(again[1], val)  # fixed seed: every trial is selected on the same images
    assert not torch.equal(validation.validation_split(train.labels, 0.2, groups, seed=1)[1], val)
    assert validation.split_groups("digits", "train") is None and validation.split_groups("cifar10", "train") is None


def test_validation_split_of_cifar_files_is_by_image_and_stratified(tmp_path):
    """CIFAR-10 in its official on-disk format: no groups, so the split is by image."""
    write_cifar10(tmp_path, n_per_batch=40, n_test=5)
    train = load_split("cifar10", str(tmp_path), "train", 32)
    fit, val = validation.validation_split(train.labels, 0.25)
    assert len(val) == 50 and len(fit) == 150 and not set(fit.tolist()) & set(val.tolist())
    assert torch.bincount(train.labels[val], minlength=10).tolist() == [5] * 10  # 20 of each class, a quarter
    sub = train.take(val)
    assert torch.equal(sub.images, train.images[val]) and sub.num_classes == 10


def test_validation_split_refuses_what_it_cannot_stratify():
    labels = torch.arange(40) % 10
    with pytest.raises(validation.SplitError, match=r"val_fraction=0\.05 cannot split 40 labelled images of 10 classes"):
        validation.validation_split(labels, 0.05)
    with pytest.raises(validation.SplitError, match="must be in \\(0, 1\\)"):
        validation.validation_split(labels, 1.0)
    with pytest.raises(ValueError, match="more than one class"):
        validation.validation_split(labels, 0.5, groups=torch.zeros(40, dtype=torch.int64))
    # unlabelled images (STL-10's) are never validated on
    fit, val = validation.validation_split(torch.cat([labels, torch.full((20,), -1)]), 0.5)
    assert (val < 40).all() and set(range(40, 60)) <= set(fit.tolist())
