"""Table 1's encoding baseline (Eq. 3): the real ``lpips`` package with its shipped linear heads
and an AlexNet trunk read from a torch cache that the test fills with a randomly initialised
file (the path torchvision takes for ImageNet weights, without a download); a study marks its
encoding rows when the file is missing, and trains them when it is there (real Ray)."""
from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch

from sqsp.config import ConfigError, preset
from sqsp.encode import load_lpips, lpips_trunk_path, missing_lpips_weights
from sqsp.reconstruction import LPIPS_MIN_SIZE, perceptual_distance
from sqsp.generators import build_architecture
from sqsp.train import train, unavailable

TINY = {"batch_size": 64, "student_width": 0.125, "projector_dim": 64, "projector_depth": 2, "eval_every": 0,
        "checkpoint_every": 1, "knn_k": 10, "probe": "fast", "generator": "random:stylegan@16", "precision": "fp32",
        "channels_last": False, "base_lr": 0.2, "eval_init": False, "eval_mmd": False}
# LPIPS itself (the smoke preset's encoder uses the zoo classifier's stand-in, tested below)
ENCODE = {"method": "encode", "teacher_source": "w", "syn_augment": False, "lpips_net": "alex"}


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """An empty torch cache for the whole module (Ray's workers, started later, inherit it)."""
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        yield home


def place_random_trunk(net: str = "alex") -> None:
    """torchvision's architecture with random weights, saved where its ImageNet file would be."""
    import torchvision
    path = lpips_trunk_path(net)
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    model = {"alex": torchvision.models.alexnet, "squeeze": torchvision.models.squeezenet1_1}[net]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(model().state_dict(), path)


@pytest.fixture(scope="module")
def gen():
    return build_architecture("stylegan", resolution=16, seed=0)


def test_missing_trunk_is_named_before_anything_runs(tmp_path, monkeypatch):
    """A cache of its own, empty, whatever other tests placed in the module's."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert not lpips_trunk_path("squeeze").exists()
    want = f"needs LPIPS weights: squeezenet1_1-b8a52dc0.pth in {tmp_path / 'hub' / 'checkpoints'}"
    assert missing_lpips_weights("squeeze") == want
    cfg = preset("smoke", {**TINY, **ENCODE, "lpips_net": "squeeze", "steps": 2})
    assert unavailable(cfg) == want and unavailable(preset("smoke", TINY)) is None
    with pytest.raises(FileNotFoundError, match="squeezenet1_1-b8a52dc0.pth.*does not download"):
        train(cfg)


def test_encoder_config_is_validated():
    with pytest.raises(ConfigError, match="syn_augment=false"):
        preset("smoke", {**TINY, "method": "encode"})
    with pytest.raises(ConfigError, match=r"syn_ratio=0.0 is outside \(0, 1\]"):
        preset("smoke", {**TINY, **ENCODE, "syn_ratio": 0.0})
    with pytest.raises(ConfigError, match="lpips_net='resnet' is not allowed"):
        preset("smoke", {**TINY, **ENCODE, "lpips_net": "resnet"})
    with pytest.raises(ConfigError, match="latent_weight=-1.0 is negative"):
        preset("smoke", {**TINY, **ENCODE, "latent_weight": -1})


def test_lpips_compares_small_images_and_passes_gradients(torch_home):
    place_random_trunk("alex")
    assert missing_lpips_weights("alex") is None
    lp = load_lpips("alex")
    assert not any(p.requires_grad for p in lp.parameters())
    a = torch.rand(4, 3, 16, 16) * 2 - 1  # below what AlexNet can pool: upsampled to LPIPS_MIN_SIZE
    b = a.clone().requires_grad_(True)
    assert LPIPS_MIN_SIZE == 32 and perceptual_distance(lp, a, b).item() == pytest.approx(0.0, abs=1e-6)
    far = perceptual_distance(lp, a, torch.rand(4, 3, 16, 16) * 2 - 1)
    assert far.item() > 1e-3
    c = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    perceptual_distance(lp, a, c).backward()
    assert torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0


@pytest.mark.slow
def test_encoder_learns_to_invert_the_frozen_generator(torch_home, gen):
    """Eq. 3 through the real loop: the latent and LPIPS terms fall, the generator is untouched,
    the encoder is probed; with real images the LPIPS term on them is reported too."""
    from sqsp.data import load_split
    place_random_trunk("alex")
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    cfg = preset("smoke", {**TINY, **ENCODE, "syn_ratio": 1.0, "batch_size": 128})
    epoch = len(load_split(cfg.dataset, None, "pretrain", 16)) // 128
    reports = []
    m = train(cfg.replace(steps=epoch + 10), lambda r, c: reports.append(r), generator=gen)
    assert [r["step"] for r in reports] == [epoch, epoch + 10] and m["done"]  # a report per epoch, and the end
    assert reports[1]["loss_latent"] < 0.9 * reports[0]["loss_latent"]
    assert reports[1]["loss_image_syn"] < reports[0]["loss_image_syn"]  # L1 + LPIPS, as encode.py
    assert math.isclose(m["loss"], m["loss_latent"] + m["loss_image_syn"], rel_tol=1e-5)  # λ = 1
    assert all(torch.equal(v, before[k]) for k, v in gen.state_dict().items())
    assert 0 < m["probe_acc"] <= 100 and m["collapsed"] is False and m["teacher_std"] > 0

    mixed = train(preset("smoke", {**TINY, **ENCODE, "syn_ratio": 0.5, "steps": 3, "latent_weight": 0.0}),
                  generator=gen)
    assert math.isfinite(mixed["loss_image_real"]) and mixed["loss_latent"] > 0
    assert math.isclose(mixed["loss"], 0.5 * mixed["loss_image_syn"] + 0.5 * mixed["loss_image_real"], rel_tol=1e-5)


def test_image_term_is_l1_plus_lpips_on_w_plus(torch_home, gen):
    """encode.py: the encoder predicts one w per synthesis layer (w+; the embedded StyleGAN has
    one), and the image term is L1 + LPIPS between the re-rendered and the given image."""
    from sqsp.train import build_run, compute_loss
    place_random_trunk("alex")
    run = build_run(preset("smoke", {**TINY, **ENCODE, "syn_ratio": 1.0, "steps": 1}), generator=gen)
    assert gen.num_ws == 1 and run.student.projector[-1].out_features == gen.num_ws * gen.w_dim
    state = torch.random.get_rng_state(), run.synthetic.rng.get_state()
    out = compute_loss(run)
    torch.random.set_rng_state(state[0])
    run.synthetic.rng.set_state(state[1])
    syn = run.synthetic(run.config.syn_batch)
    with torch.no_grad():
        rendered = gen.synthesize(run.student(syn.images).reshape(len(syn.images), 1, -1))
        l1 = (rendered - (syn.images * 2 - 1)).abs().mean()
        want = l1 + perceptual_distance(run.perceptual, rendered, syn.images * 2 - 1)
    assert l1 > 0.05 and out["loss_image_syn"].item() == pytest.approx(want.item(), rel=1e-4)
    with pytest.raises(ValueError, match=r"w\+ of shape \(2, 3, 128\): generator 'stylegan' takes 1 w"):
        gen.synthesize(torch.zeros(2, 3, gen.w_dim))


def test_zoo_classifier_distance_is_lpips_construction_on_another_trunk():
    """The embedded default's offline stand-in for LPIPS: per stage, channel-normalised features,
    squared differences summed over channels and averaged over positions, summed over stages."""
    from sqsp.encode import _unit, classifier_distance
    from sqsp.fid import SmallClassifier
    torch.manual_seed(0)
    clf = SmallClassifier(resolution=16).eval()
    d = classifier_distance(clf).eval()
    a, b = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        fa, fb, want = a, b, torch.zeros(3)
        for stage in (clf.body[0], clf.body[1:3], clf.body[3:5]):
            fa, fb = stage(fa), stage(fb)
            want += ((_unit(fa) - _unit(fb)) ** 2).sum(1).mean((1, 2))
        assert torch.allclose(d(a, b), want) and d(a, a).abs().max() < 1e-6 and (d(a, b) > 0.01).all()
    c = b.clone().requires_grad_(True)
    perceptual_distance(d, a, c).backward()  # at the classifier's own 16 px, not LPIPS's 32
    assert d.min_size == 16 and torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0
    smoke = preset("smoke", {k: v for k, v in ENCODE.items() if k != "lpips_net"})
    assert smoke.lpips_net == "zoo-classifier" and unavailable(smoke) is None  # the smoke preset: offline
    import importlib

    from sqsp.tune import base_config, expand
    ks = importlib.import_module("studies.knowledge_source").STUDY  # Table 1 offline, or with LPIPS if asked
    for user, want in (([], "zoo-classifier"), (["lpips_net=alex"], "alex")):
        assert {c.lpips_net for _, c in expand(ks, base_config(ks, user)) if c.method == "encode"} == {want}
    for name in ("paper-cifar10", "paper-cifar100"):  # the paper presets keep LPIPS (AlexNet, encode.py)
        assert preset(name, {"data_root": ".", **ENCODE}).lpips_net == "alex"


def test_generator_without_mapping_cannot_be_inverted(torch_home):
    place_random_trunk("alex")
    with pytest.raises(ValueError, match="mapping network"):
        train(preset("smoke", {**TINY, **ENCODE, "steps": 2, "generator": "random:dcgan@16"}))


# ---------------------------------------------------------------------------------------------
# a study: rows that need LPIPS are skipped (and say why) when the trunk is missing, and run when it is there
@pytest.fixture
def ray_with_cache(ray_session, ray_dirs, monkeypatch):
    """The session's Ray, whose workers read the torch cache ``ray_dirs.torch_home``; the driver's
    checks (which rows this machine can run) read the same one."""
    monkeypatch.setenv("TORCH_HOME", str(ray_dirs.torch_home))
    return ray_dirs.torch_home


@pytest.mark.slow
def test_study_skips_encoding_rows_without_the_trunk_and_trains_them_with_it(ray_with_cache, tmp_path):
    from analysis.tables import format_table, knowledge_source_table
    from sqsp import results
    from sqsp.tune import Study, run_study

    scale = {**TINY, "steps": 3}  # a study declares what it compares; the scale comes from the run
    study = Study(name="knowledge_source", preset="smoke", seeds=(0,), grid=[
        {"row": "latent-encoding-syn", **ENCODE, "syn_ratio": 1.0, "lpips_net": "squeeze"},
        {"row": "feature-squeeze", "syn_ratio": 1.0},
    ])
    if lpips_trunk_path("squeeze").exists():
        os.remove(lpips_trunk_path("squeeze"))
    trials = run_study(study, storage=str(tmp_path / "without"), max_failures=0, overrides=scale)
    by = results.read_trials(str(tmp_path / "without" / "knowledge_source")).set_index("row")
    assert sorted(by.index) == sorted(trials["row"]) and len(by) == 2
    need = f"needs LPIPS weights: squeezenet1_1-b8a52dc0.pth in {ray_with_cache / 'hub' / 'checkpoints'}"
    assert by.loc["latent-encoding-syn", "status"] == "skipped" and by.loc["latent-encoding-syn", "error"] == need
    assert by.loc["feature-squeeze", "status"] == "completed" and by.loc["feature-squeeze", "probe_acc"] > 0
    assert (by.loc["latent-encoding-syn", "row_index"], by.loc["feature-squeeze", "row_index"]) == (0, 1)
    md = format_table(knowledge_source_table(trials)).splitlines()
    assert md[2].startswith(f"| latent-encoding-syn | encode | w |  | 1.00 | squeeze | {need} |")  # declared order
    assert md[3].startswith("| feature-squeeze | distill | features | ✓ | 1.00 |  |")  # no perceptual distance
    assert md[2].endswith("| 57.15 |")  # the paper's number beside it

    place_random_trunk("squeeze")  # the workers look for it at trial start
    trials = run_study(dataclasses.replace(study, grid=study.grid[:1]), storage=str(tmp_path / "with"),
                       max_failures=0, overrides=scale)
    assert list(trials["status"]) == ["completed"], trials[["row", "status", "error"]]
    enc = trials.set_index("row").loc["latent-encoding-syn"]
    assert enc["probe_acc"] > 0 and enc["loss_latent"] > 0 and enc["method"] == "encode"
