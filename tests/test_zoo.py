"""The zoo on a tiny build (a few GAN steps): manifest, resolution by name, integrity,
interrupted builds, user manifests, and the training loop on every zoo architecture."""
from __future__ import annotations

import contextlib
import json
import shutil

import pytest
import torch

import sqsp.weights
from sqsp import zoo, zoo_build
from sqsp.generators import FeatureGenerator

pytestmark = pytest.mark.xdist_group("zoo")  # one xdist worker: its module fixture is built once

TINY = dict(steps=4, fid_samples=80, quality_samples=80, classifier_epochs=1, progress=False, workers=1)
REQUIRED = {"name", "arch", "dataset", "resolution", "conditional", "step", "fid", "file", "sha256"}


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("zoo")
    manifest = zoo.build(directory, **TINY)
    return directory, manifest


@pytest.mark.slow
def test_build_writes_complete_entries(tiny_zoo):
    directory, manifest = tiny_zoo
    # snapshots at fractions of the run: 4 steps -> @1, @2 and the final @4 (+ the plain name)
    assert sorted(manifest["entries"]) == sorted(zoo.zoo_names(steps=4))
    assert {"stylegan-digits-m", "stylegan-digits-m@1", "stylegan-digits-m@2", "stylegan-digits-m@4", "dcgan-digits-m",
            "stylegan-digits-m-cond"} <= set(manifest["entries"])
    on_disk = json.loads((directory / "manifest.json").read_text())
    assert on_disk["entries"] == manifest["entries"]
    for name, e in manifest["entries"].items():
        assert REQUIRED <= set(e), name
        assert e["fid"]["extractor"] == zoo.CLASSIFIER and e["fid"]["n_samples"] == 80
        assert e["fid"]["extractor_sha256"] == manifest["extractors"][zoo.CLASSIFIER]["sha256"]
        assert (directory / e["file"]).is_file() and (directory / e["samples"]).is_file()
    assert manifest["entries"]["stylegan-digits-m-cond"]["conditional"] is True
    assert manifest["entries"]["dcgan-digits-m"]["arch"] == "dcgan"
    ref = manifest["references"]["real-test"]
    assert ref["extractor"] == zoo.CLASSIFIER and (ref["n_samples"], ref["n_reference"]) == (900, 2694)
    assert not list(directory.glob("*.tmp"))


def test_load_by_name_and_other_specs(tiny_zoo):
    directory, manifest = tiny_zoo
    g = zoo.load_generator("stylegan-digits-m-cond", zoo=directory)
    assert isinstance(g, FeatureGenerator) and g.conditional and g.block_names == ["b4", "b8", "b16"]
    assert not g.net.training and not any(p.requires_grad for p in g.parameters())
    by_path = zoo.load_generator(str(directory / manifest["entries"]["stylegan-digits-m-cond"]["file"]))
    z, c = g.sample_inputs(3, "cpu", torch.Generator().manual_seed(0))
    assert torch.equal(g(z, c).images, by_path(z, c).images)
    assert zoo.load_generator("random:dcgan@32").resolution == 32
    assert zoo.load_generator("random:stylegan").resolution == zoo.RESOLUTION
    with pytest.raises(ValueError, match="unknown architecture 'vae'"):
        zoo.load_generator("random:vae@16")
    with pytest.raises(LookupError, match="'no-such-gan'.*stylegan-digits-m"):
        zoo.load_generator("no-such-gan", zoo=directory)


def test_list_prints_the_manifest(tiny_zoo, capsys):
    directory, _ = tiny_zoo
    zoo.main(["--dir", str(directory), "list"])
    out = capsys.readouterr().out
    assert "stylegan-digits-m@2" in out and "dcgan-digits-m" in out and "reference real-test" in out


def test_hash_mismatch_is_refused(tiny_zoo, tmp_path):
    directory, _ = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(directory, copy)
    e = json.loads((copy / "manifest.json").read_text())["entries"]["dcgan-digits-m"]
    data = bytearray((copy / e["file"]).read_bytes())
    data[-1] ^= 1
    (copy / e["file"]).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256.*refusing"):
        zoo.load_generator("dcgan-digits-m", zoo=copy)


def test_user_manifest(tiny_zoo, tmp_path, monkeypatch):
    directory, manifest = tiny_zoo
    e = manifest["entries"]["stylegan-digits-m"]
    shutil.copy(directory / e["file"], tmp_path / "mine.safetensors")
    shutil.copy(directory / e["sidecar"], tmp_path / "mine.json")
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"entries": {"my-gan": {"file": "mine.safetensors", "sha256": e["sha256"],
                                                       "arch": "stylegan", "fid": {"value": 1.0}}}}))
    monkeypatch.setenv("SQSP_ZOO_MANIFESTS", str(user))
    assert zoo.load_generator("my-gan", zoo=directory).block_names == ["b4", "b8", "b16"]
    zoo.main(["--dir", str(directory), "list"])
    # an official pickle with a wrong hash is refused before anything is unpickled
    (tmp_path / "evil.pkl").write_bytes(b"not a pickle")
    user.write_text(json.dumps({"entries": {"theirs": {"file": "evil.pkl", "sha256": "0" * 64,
                                                       "format": "stylegan-pkl"}}}))
    with pytest.raises(ValueError, match="sha256"):
        zoo.load_generator("theirs", zoo=directory)
    user.write_text(json.dumps({"entries": {"dcgan-digits-m": {"file": "mine.safetensors", "sha256": e["sha256"]}}}))
    with pytest.raises(ValueError, match="defined in both"):
        zoo.load_generator("my-gan", zoo=directory)
    user.write_text(json.dumps({"entries": {"x": {"file": "mine.safetensors"}}}))
    with pytest.raises(ValueError, match="no 'sha256'"):
        zoo.entries(directory)


@pytest.mark.slow
def test_interrupted_build_leaves_no_half_written_entry(tmp_path, monkeypatch):
    directory = tmp_path / "zoo"
    real_output = sqsp.weights.atomic_output

    @contextlib.contextmanager
    def crash_in_cond_write(target):
        if "cond" not in str(target):
            with real_output(target) as f:
                yield f
            return
        with real_output(target) as f:  # half a checkpoint written, then the build is killed
            f.write(b"half a checkpoint")
            raise KeyboardInterrupt

    monkeypatch.setattr("sqsp.weights.atomic_output", crash_in_cond_write)
    with pytest.raises(KeyboardInterrupt):
        zoo.build(directory, **TINY)
    entries = json.loads((directory / "manifest.json").read_text())["entries"]
    # runs go longest first (dcgan: 4 steps x 32 images), the conditional run crashed last
    assert {e["run"] for e in entries.values()} == {"dcgan-digits-m", "stylegan-digits-m"}
    assert not list(directory.glob("*cond*.safetensors")) and not list(directory.glob("*.tmp"))
    for name in entries:  # what the manifest holds is complete and intact
        zoo.verify(zoo.entries(directory)[name])

    # the next build resumes: finished runs are not retrained, the rest completes
    monkeypatch.setattr("sqsp.weights.atomic_output", real_output)
    trained = []
    real_train = zoo_build.train_gan
    monkeypatch.setattr(zoo_build, "train_gan", lambda run, *a, **k: trained.append(run.name) or real_train(run, *a, **k))
    manifest = zoo.build(directory, **TINY)
    assert trained == ["stylegan-digits-m-cond"]
    assert sorted(manifest["entries"]) == sorted(zoo.zoo_names(steps=4))
    assert not list(directory.glob("*.tmp"))


def test_missing_zoo_name_builds_only_its_run_on_first_use(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "zoo"
    real_build = zoo.build
    calls = []
    monkeypatch.setattr(zoo, "build", lambda z=None, *, runs, **k: calls.append((z, [r.name for r in runs])) or
                        real_build(z, runs=runs, **{**TINY, **k}))
    g = zoo.load_generator("dcgan-digits-m", zoo=directory)
    assert calls == [(directory, ["dcgan-digits-m"])] and g.arch == "dcgan"
    assert "generator 'dcgan-digits-m' is not in the zoo" in capsys.readouterr().err
    assert {e["run"] for e in zoo.entries(directory).values()} == {"dcgan-digits-m"}  # no other run waited for
    zoo.load_generator("dcgan-digits-m", zoo=directory)
    assert len(calls) == 1  # built once

    # an entry from an older build version is rebuilt on first use; a step the zoo has no
    # snapshot of fails at once, without training anything
    manifest = json.loads((directory / "manifest.json").read_text())
    for e in manifest["entries"].values():
        e["build_version"] = zoo.BUILD_VERSION - 1
    (directory / "manifest.json").write_text(json.dumps(manifest))
    zoo.ensure("dcgan-digits-m", zoo=directory)
    assert len(calls) == 2 and "older version" in capsys.readouterr().err
    with pytest.raises(LookupError, match="'stylegan-digits-m@999'"):
        zoo.load_generator("stylegan-digits-m@999", zoo=directory)
    assert len(calls) == 2


@pytest.mark.parametrize("name", ["stylegan-digits-m", "dcgan-digits-m", "stylegan-digits-m-cond"])
def test_training_step_runs_with_every_zoo_architecture(tiny_zoo, name, monkeypatch):
    """The smoke preset takes its generator from the zoo by name; one step of sqsp.train's
    loop (generator -> block features -> squeeze -> loss -> update) runs on each."""
    train = pytest.importorskip("sqsp.train")
    from sqsp.config import preset
    directory, _ = tiny_zoo
    monkeypatch.setenv("SQSP_ZOO_DIR", str(directory))
    cfg = preset("smoke", {"generator": name, "steps": 1, "batch_size": 16, "device": "cpu", "precision": "fp32",
                           "squeeze_width": 32, "teacher_dim": 32, "projector_dim": 32})
    run = train.build_run(cfg)
    assert run.synthetic.generator.arch == zoo.entries(directory)[name]["arch"]
    terms = train.train_step(run)
    assert torch.isfinite(terms["loss"])


@pytest.mark.slow
def test_entries_keep_their_discriminator_which_gives_features(tiny_zoo, tmp_path, monkeypatch):
    """Table 1's direct-use baseline: the discriminator trained with each snapshot is kept,
    hash-checked, and yields the single (penultimate) or multi-resolution (Eq. 2) features."""
    from sqsp.config import ConfigError, preset
    from sqsp.discriminator import DiscriminatorBackbone
    from sqsp.evaluate import extract_features
    from sqsp.train import train
    directory, manifest = tiny_zoo
    e = manifest["entries"]["stylegan-digits-m-cond"]
    assert (directory / e["discriminator"]).is_file() and e["discriminator_kwargs"]["c_dim"] == 10
    disc = zoo.load_discriminator("stylegan-digits-m-cond", zoo=directory)
    assert not any(p.requires_grad for p in disc.parameters())
    x = zoo_build._digits("test")[0][:9]
    single = extract_features(DiscriminatorBackbone(disc, "single"), x, device="cpu")
    multi = extract_features(DiscriminatorBackbone(disc, "multi"), x, device="cpu")
    width = e["discriminator_kwargs"]["width"]
    assert single.shape == (9, 2 * width)                      # the fc's output
    # Eq. 2: GAP of each stage's output (8 px and 4 px, after its pool), then the fc's vector
    assert multi.shape == (9, 3 * 2 * width)
    assert torch.equal(multi[:, -2 * width:], single) and torch.isfinite(multi).all()

    monkeypatch.setenv("SQSP_ZOO_DIR", str(directory))
    m = train(preset("smoke", {"method": "discriminator", "generator": "dcgan-digits-m", "disc_features": "single",
                               "transfer_datasets": "digits-m"}))
    assert m["done"] and 10 < m["probe_acc"] <= 100 and m["generator_arch"] == "dcgan"
    assert (m["probe_acc@digits-m"], m["knn_acc@digits-m"]) == (m["probe_acc"], m["knn_acc"])  # same data, same numbers
    with pytest.raises(ConfigError, match="method='discriminator'.*is neither"):
        preset("smoke", {"method": "discriminator", "generator": "random:stylegan"})
    paper = train(preset("smoke", {"method": "discriminator", "generator": "dcgan-digits-m", "disc_features": "multi",
                                   "probe": "paper", "probe_epochs": 2}))  # a linear layer through the frozen D
    dcgan_width = manifest["entries"]["dcgan-digits-m"]["discriminator_kwargs"]["width"]
    assert paper["done"] and paper["feature_dim"] == 3 * 2 * dcgan_width
    assert 10 < paper["probe_acc"] <= 100

    copy = tmp_path / "zoo"
    shutil.copytree(directory, copy)
    (copy / e["discriminator"]).write_bytes(b"not the trained discriminator")
    with pytest.raises(ValueError, match=r"disc\.safetensors' has sha256"):
        zoo.load_discriminator("stylegan-digits-m-cond", zoo=copy)


def test_a_pickle_in_the_zoos_own_manifest_is_never_unpickled(tiny_zoo, tmp_path, monkeypatch):
    """sqsp writes the zoo's manifest and never with a pickle: an entry there that names one
    was put by someone else. Only a user manifest (or a path in the config) may name one."""
    import pickle
    from test_data import _Payload  # unpickling it creates the marker file
    directory, _ = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(directory, copy)
    marker = tmp_path / "marker"
    evil = copy / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": _Payload(marker)}))
    entry = {"file": "evil.pkl", "sha256": zoo.fidlib.file_sha256(evil), "format": "stylegan-pkl", "arch": "stylegan"}
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["entries"]["stylegan-digits-m"] = {**manifest["entries"]["stylegan-digits-m"], **entry}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    repo = tmp_path / "repo"  # an importable dnnlib/torch_utils, so nothing else stops the unpickling
    for m in ("dnnlib", "torch_utils"):
        (repo / m).mkdir(parents=True)
        (repo / m / "__init__.py").write_text("")
    for call in (lambda: zoo.load_generator("stylegan-digits-m", zoo=copy, stylegan_repo=str(repo)),
                 lambda: zoo.check_generator("stylegan-digits-m", zoo=copy, stylegan_repo=str(repo))):
        with pytest.raises(zoo.ZooError, match="zoo's own manifest.*names a pickle.*SQSP_ZOO_MANIFESTS"):
            call()
    assert not marker.exists()

    # the same entry in a user manifest is the user's choice: it is unpickled (the payload runs)
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"entries": {"theirs": {**entry, "file": str(evil)}}}))
    monkeypatch.setenv("SQSP_ZOO_MANIFESTS", str(user))
    zoo.check_generator("theirs", zoo=copy, stylegan_repo=str(repo))  # found, hash ok, code located; not unpickled
    assert not marker.exists()
    with pytest.raises(ValueError, match="no .G_ema. network"):  # the payload's return value is not a network
        zoo.load_generator("theirs", zoo=copy, stylegan_repo=str(repo))
    assert marker.exists()


def test_check_generator_finds_what_would_fail_every_trial(tiny_zoo, tmp_path):
    from sqsp.config import ConfigError
    directory, manifest = tiny_zoo
    zoo.check_generator("stylegan-digits-m", blocks="b4,b16", teacher_source="w", zoo=directory)
    zoo.check_generator("dcgan-digits-m", blocks="b4-b8", discriminator=True, zoo=directory)
    with pytest.raises(ConfigError, match=r"'stylegan-digits-m'.*generator_blocks='b999'.* has no block \['b999'\]; "
                                          r"it has \['b4', 'b8', 'b16'\]"):
        zoo.check_generator("stylegan-digits-m", blocks="b999", zoo=directory)
    with pytest.raises(ConfigError, match="teacher_source='w'.*mapping"):
        zoo.check_generator("dcgan-digits-m", teacher_source="w", zoo=directory)
    with pytest.raises(zoo.UnknownGenerator, match="'stylegan-digits-m@999'"):
        zoo.check_generator("stylegan-digits-m@999", zoo=directory)
    # random specs and our checkpoints are built or loaded (cheap) to read their blocks
    zoo.check_generator("random:stylegan@32", blocks="b32")
    with pytest.raises(ConfigError, match=r"has no block \['b32'\]"):
        zoo.check_generator("random:dcgan@16", blocks="b32")
    ckpt = directory / manifest["entries"]["dcgan-digits-m"]["file"]
    with pytest.raises(ConfigError, match="b64"):
        zoo.check_generator(str(ckpt), blocks="b64")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        zoo.check_generator(str(tmp_path / "nope.safetensors"))
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        zoo.check_generator(str(tmp_path / "nope.pkl"))
    (tmp_path / "there.pkl").write_bytes(b"never unpickled by a check")
    with pytest.raises(ModuleNotFoundError, match="dnnlib"):  # the authors' code must be findable
        zoo.check_generator(str(tmp_path / "there.pkl"), stylegan_repo=str(tmp_path))
    # a tampered file is found by its hash
    copy = tmp_path / "zoo"
    shutil.copytree(directory, copy)
    (copy / manifest["entries"]["dcgan-digits-m"]["file"]).write_bytes(b"truncated")
    with pytest.raises(zoo.ZooError, match="sha256"):
        zoo.check_generator("dcgan-digits-m", zoo=copy)
    assert issubclass(zoo.ZooError, ValueError) and issubclass(zoo.UnknownGenerator, LookupError)


def test_command_line_prints_user_errors_as_one_line(tmp_path, capsys):
    missing = tmp_path / "mine.json"
    assert zoo.main(["--dir", str(tmp_path / "zoo"), "list", "--manifest", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"python -m sqsp.zoo: error: user zoo manifest {str(missing)!r} does not exist (from " \
                  "$SQSP_ZOO_MANIFESTS or --manifest)\n"
    missing.write_text("{not json")
    assert zoo.main(["--dir", str(tmp_path / "zoo"), "list", "--manifest", str(missing)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
