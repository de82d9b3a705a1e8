"""The trained zoo shipped in the package: its files match its manifest, it is what the
default runs would train, and a cold zoo directory adopts it without training."""
from __future__ import annotations

import json
import shutil

import pytest

from sqsp import fid as fidlib
from sqsp import gan, zoo, zoo_build, zoo_bundle

SHIPPED = zoo_bundle.read_bundle()


def test_the_shipped_files_match_the_manifest():
    assert SHIPPED is not None, f"no shipped zoo at {zoo_bundle.BUNDLE_DIR}"
    listed = {zoo_bundle.BUNDLE_DIR / "manifest.json"}
    for info in SHIPPED["extractors"].values():
        assert fidlib.file_sha256(zoo_bundle.BUNDLE_DIR / info["file"]) == info["sha256"]
        listed |= {zoo_bundle.BUNDLE_DIR / info["file"], (zoo_bundle.BUNDLE_DIR / info["file"]).with_suffix(".json")}
    for name, e in SHIPPED["entries"].items():
        for f, sha in zoo_bundle.files_of(e):
            path = zoo_bundle.BUNDLE_DIR / f
            assert path.is_file(), (name, f)
            assert sha is None or fidlib.file_sha256(path) == sha, (name, f)
            listed.add(path)
    on_disk = {p for p in zoo_bundle.BUNDLE_DIR.iterdir() if p.is_file()}
    assert on_disk == listed  # nothing shipped that the manifest does not name
    assert sum(p.stat().st_size for p in on_disk) < 20e6  # package data, not a model hub


def test_the_shipped_zoo_is_what_the_default_runs_make():
    assert sorted(SHIPPED["entries"]) == sorted(zoo.zoo_names())
    for run in zoo.DEFAULT_RUNS:
        recipe = zoo_build._run_recipe(run, None, 0, 2000, 10_000)
        assert {e["recipe"] for e in SHIPPED["entries"].values() if e["run"] == run.name} == {recipe}, run.name
    cls = SHIPPED["extractors"][zoo.CLASSIFIER]
    assert cls["recipe"] == zoo_build._recipe(classifier_epochs=8, seed=0) and cls["test_accuracy"] >= 0.91
    assert [r["name"] for r in SHIPPED["made_by"]["runs"]] == [r.name for r in zoo.DEFAULT_RUNS]
    for e in SHIPPED["entries"].values():  # every entry says how far it is from issue 24's targets
        assert set(e["quality"]) >= {"precision", "recall", "confidence", "largest_class", "probe"}
        assert e["misses"] == zoo.qualitylib.failures(e["quality"], e["conditional"])


def test_a_cold_zoo_adopts_the_shipped_one_without_training(tmp_path, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("a shipped run was trained")
    monkeypatch.setattr(gan, "train_gan", no_training)
    monkeypatch.setattr(zoo_build, "train_gan", no_training)
    monkeypatch.setattr(fidlib, "train_classifier", no_training)
    m = zoo.build(tmp_path, progress=False, workers=1)
    assert sorted(m["entries"]) == sorted(SHIPPED["entries"]) and all(e["shipped"] for e in m["entries"].values())
    assert m["extractors"][zoo.CLASSIFIER]["sha256"] == SHIPPED["extractors"][zoo.CLASSIFIER]["sha256"]
    g = zoo.load_generator("stylegan-digits-m-cond", zoo=tmp_path, build_if_missing=False)
    assert g.conditional
    out = zoo.format_listing(tmp_path)
    assert "stylegan-digits-m " in out and "bar" in out


def test_a_tampered_shipped_file_is_refused(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(zoo_bundle.BUNDLE_DIR, bundle)
    e = json.loads((bundle / "manifest.json").read_text())["entries"]["dcgan-digits-m"]
    data = bytearray((bundle / e["file"]).read_bytes())
    data[-1] ^= 1
    (bundle / e["file"]).write_bytes(bytes(data))
    target = tmp_path / "zoo"
    target.mkdir()
    with pytest.raises(zoo.ZooError, match="does not match the sha256"):
        zoo_bundle.adopt_run(target, "dcgan-digits-m", e["recipe"], e["fid"]["extractor_sha256"], bundle=bundle)


def test_listing_a_cold_zoo_shows_the_shipped_entries_and_copies_nothing(tmp_path):
    """`sqsp-zoo list` on a new machine: the zoo folder is empty until a generator is first used,
    and what will be there is the shipped zoo, with how far each entry is from the bar."""
    cold = tmp_path / "zoo"
    out = zoo.format_listing(cold)
    assert out.splitlines()[0] == f"zoo: {cold}" and "no entries yet" in out and str(zoo_bundle.BUNDLE_DIR) in out
    main = next(line for line in out.splitlines() if line.startswith("stylegan-digits-m "))
    assert main.split()[-2:] == ["meets", SHIPPED["entries"]["stylegan-digits-m"]["file"]]
    assert "misses" in next(line for line in out.splitlines() if line.startswith("dcgan-digits-m "))
    assert not cold.exists()  # listing is read-only
