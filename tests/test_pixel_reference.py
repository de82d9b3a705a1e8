"""The raw-pixel floor's cache: a value read back is the value computed, for these very images."""
from __future__ import annotations

import json

import pytest

from sqsp import evaluate
from sqsp.data import load_split
from sqsp.pixel_reference import _key, _read, pixel_reference

compute = pixel_reference.__wrapped__  # past the per-process lru_cache, to the disk
ARGS = ("digits", None, 16)


def _direct(knn_k=20, knn_t=0.1):
    train, test = (load_split("digits", None, split, 16) for split in ("train", "test"))
    x_train, x_test = train.images.flatten(1).float(), test.images.flatten(1).float()
    return {"raw_knn_acc": evaluate.knn_accuracy(x_train, train.labels, x_test, test.labels, num_classes=10,
                                                 k=knn_k, t=knn_t),
            "raw_probe_acc": evaluate.linear_probe_fast(x_train, train.labels, x_test, test.labels)}


def test_computed_once_then_read_back_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("SQSP_CACHE_DIR", str(tmp_path))
    first = compute(*ARGS, knn_k=20, knn_t=0.1)
    assert first == _direct()
    files = list((tmp_path / "pixel-reference").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["dataset"] == "digits"

    def refuse(*a, **k):
        raise AssertionError("the probe was fitted again though its result is cached")
    with monkeypatch.context() as m:
        m.setattr(evaluate, "linear_probe_fast", refuse)
        m.setattr(evaluate, "knn_accuracy", refuse)
        assert compute(*ARGS, knn_k=20, knn_t=0.1) == first  # the same floats, from the file
        with pytest.raises(AssertionError, match="fitted again"):  # another k: another key
            compute(*ARGS, knn_k=5, knn_t=0.1)
    # without the probe, the kNN alone under a key of its own
    assert compute(*ARGS, knn_k=20, knn_t=0.1, probe=False) == {"raw_knn_acc": first["raw_knn_acc"]}
    assert len(list((tmp_path / "pixel-reference").glob("*.json"))) == 2


def test_a_corrupt_or_unwritable_cache_only_costs_the_computation(tmp_path, monkeypatch):
    monkeypatch.setenv("SQSP_CACHE_DIR", str(tmp_path))
    expected = compute(*ARGS, knn_k=20, knn_t=0.1, probe=False)  # the kNN alone: milliseconds a computation
    (path,) = (tmp_path / "pixel-reference").glob("*.json")
    for bad in ('{"raw_knn_acc": 1.0', '{"raw_knn_acc": "x"}', '{"knn": 1.0}', "[]", ""):
        path.write_text(bad)  # half written, not a number, the value missing, not a record, empty
        assert compute(*ARGS, knn_k=20, knn_t=0.1, probe=False) == expected
        assert json.loads(path.read_text())["raw_knn_acc"] == expected["raw_knn_acc"]  # written over
    path.write_text(json.dumps(expected))
    assert _read(path, probe=False) == expected and _read(path, probe=True) is None  # the probe's value missing
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SQSP_CACHE_DIR", str(blocked))
    assert compute(*ARGS, knn_k=20, knn_t=0.1, probe=False) == expected


def test_the_key_is_the_images_not_the_dataset_name():
    train, test = (load_split("digits", None, split, 16) for split in ("train", "test"))
    key = _key(train, test, 20, 0.1, True)
    assert _key(train, test, 20, 0.1, True) == key
    train.images[0, 0, 0, 0] ^= 1  # one pixel of one image changed: other data, another key
    assert _key(train, test, 20, 0.1, True) != key
    train.images[0, 0, 0, 0] ^= 1
    train.labels[0] = (train.labels[0] + 1) % 10
    assert _key(train, test, 20, 0.1, True) != key
    assert len({_key(train, test, 20, 0.1, True), _key(train, test, 20, 0.2, True),
                _key(train, test, 20, 0.1, False)}) == 3
