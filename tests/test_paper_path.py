"""The paper's path end to end, on CPU: every study on ``--preset paper-cifar10`` (one on
``paper-stl10``), as a user runs it from their own working directory with relative paths,
on a CIFAR-10 / STL-10 tree in the official on-disk formats and official-format StyleGAN2-ADA
pickles (loadable only through ``stylegan_repo``). Shrunk with ``--set`` only: one step,
a narrow student, a one-epoch probe; every other setting is the preset's, and the results'
config columns must show appendix Table 2 for every trial.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from paper_fixtures import write_network_pickles, write_stylegan_repo  # noqa: E402
from sqsp import results  # noqa: E402
from sqsp.config import ConfigError  # noqa: E402
from sqsp.encode import lpips_trunk_path  # noqa: E402
from sqsp.fid import file_sha256, inception_weights_path  # noqa: E402
from sqsp.tune import run_study, study_main  # noqa: E402
from test_data import write_cifar10, write_stl10  # noqa: E402
from test_studies import TABLE2, TABLE2_SCALE, TABLE2_WEIGHTS  # noqa: E402

# every study at paper scale through the session's Ray; the module's fixtures built once, on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("paper_path")]
ROOT = Path(__file__).resolve().parents[1]
SHRINK = ["steps=1", "student_width=0.0625", "projector_dim=16", "squeeze_width=16", "teacher_dim=16",
          "probe_epochs=1", "knn_k=5", "precision=fp32", "channels_last=false", "device=cpu"]
COMMON = ["--seeds", "1", "--storage", "results", "--set", "stylegan_repo=stylegan2-ada-pytorch",
          *(a for s in SHRINK for a in ("--set", s))]
MODULES = ("dnnlib", "torch_utils", "training", "training.networks")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, ray_dirs):
    """A user's folder: data trees, the StyleGAN checkout, checkpoints under the presets' names,
    a run folder of snapshots with a manifest recording one FID, and a torch cache whose
    Inception-v3 weights (random, in torchvision's file format) make the other FID computable
    and whose AlexNet weights (random too) let Table 1's encoding rows build LPIPS."""
    d = tmp_path_factory.mktemp("user")
    (d / "torch-home").symlink_to(ray_dirs.torch_home)  # where the session's Ray workers look
    (d / "zoo").symlink_to(ray_dirs.zoo)
    write_cifar10(d / "data", n_per_batch=10, n_test=10)  # every class 5 times: a stratified validation split
    write_stl10(d / "data", n_train=10, n_test=10, n_unlabeled=10)
    repo = write_stylegan_repo(d / "stylegan2-ada-pytorch")
    write_network_pickles(repo, [(d / "checkpoints" / "cifar10u-cifar-ada-best-fid.pkl", 0),
                                 *((d / "runs" / "00000-cifar10" / f"network-snapshot-{kimg:06d}.pkl", seed)
                                   for kimg, seed in ((100, 1), (200, 2)))])
    # the authors' STL-10 generator is a 128-px one: appendix Table 6's b64-b128 row reads its last blocks
    write_network_pickles(repo, [(d / "checkpoints" / "stl10u-my128-best-fid20.86.pkl", 3)], resolution=128)
    first = d / "runs" / "00000-cifar10" / "network-snapshot-000100.pkl"
    (d / "fids.json").write_text(json.dumps({"entries": {"snapshot-100": {
        "format": "stylegan-pkl", "file": str(first.relative_to(d)), "sha256": file_sha256(first),
        "fid": {"value": 80.0, "extractor": "inception-v3-torchvision", "n_samples": 8}}}}))
    before = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(d / "torch-home")  # where torch.hub.get_dir() points
    try:
        weights = inception_weights_path()
        alexnet = lpips_trunk_path("alex")
    finally:
        os.environ.pop("TORCH_HOME") if before is None else os.environ.update(TORCH_HOME=before)
    from torchvision.models import inception_v3
    weights.parent.mkdir(parents=True, exist_ok=True)  # the session's cache may hold other weights already
    torch.save(calibrated_inception(inception_v3(weights=None, aux_logits=True, init_weights=False)).state_dict(),
               weights)
    from torchvision.models import alexnet as build_alexnet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(build_alexnet().state_dict(), alexnet)
    return d


def calibrated_inception(net):
    """A randomly initialised Inception-v3 whose BN statistics are set on random images, so that
    its features neither vanish nor explode (as a trained one's do not) and a FID means a number."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the calibration batch
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    return net.eval()


@pytest.fixture
def cluster(workdir, ray_session):
    """The session's Ray: its workers' torch cache and zoo are the user's folder's (``workdir``
    links them there)."""
    return ray_session


def run(name: str, argv: list[str], monkeypatch, workdir) -> int:
    """``python studies/<name>.py ARGV`` as typed in ``workdir`` (in-process, on the module's Ray)."""
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("TORCH_HOME", str(workdir / "torch-home"))
    monkeypatch.setenv("SQSP_ZOO_DIR", str(workdir / "zoo"))
    study = importlib.import_module(f"studies.{name}").STUDY
    try:
        return study_main(study, argv)
    finally:
        for m in MODULES:  # the pickles' classes: loaded through stylegan_repo, not kept
            sys.modules.pop(m, None)


def check_table2(trials, preset_name: str, workdir: Path, study) -> None:
    from sqsp.presets import method_scale
    rows = study.rows or {}
    swept = set(study.search_space)
    for _, t in trials.iterrows():
        # the row's method picks its line of the preset (encode.py's batch 128 and lr 0.01 for the encoder)
        want = {**dict(zip(TABLE2_SCALE, TABLE2[preset_name][:6])), **method_scale(preset_name, t["method"])}
        assert {k: t[k] for k in TABLE2_SCALE} == {k: want[k] for k in TABLE2_SCALE}, (study.name, t["row"])
        for k, want in zip(TABLE2_WEIGHTS, TABLE2[preset_name][6:]):
            if k not in set(rows.get(t["row"], {})) | swept | set(study.overrides):
                assert t[k] == want, (study.name, t["row"], k)
        assert t["data_root"] == str(workdir / "data") and t["stylegan_repo"] == str(workdir / "stylegan2-ada-pytorch")
        assert t["generator"].startswith(str(workdir)) and t["probe"] == "paper"


# The studies whose trials take distinct paths at paper scale: a grid of the paper's rows, the
# official pickle's D and the encoder (knowledge_source), VICReg with the syn-real MMD
# (domain_gap), a search with its confirmation. blocks runs on paper-stl10 below; the rest
# (ssl_baselines) is checked against appendix Table 2 at expansion (tests/test_studies.py).
CIFAR = [("ablation", 6), ("domain_gap", 4), ("knowledge_source", 10), ("loss_weights", 2 + 1)]


def test_every_study_runs_on_the_paper_cifar10_preset_from_the_users_folder(workdir, cluster, monkeypatch, capsys):
    for name, n in CIFAR:
        # 2 search trials, the best confirmed on one more seed
        extra = ["--num-samples", "2", "--confirm-top", "1", "--confirm-seeds", "1,"] if name == "loss_weights" else []
        code = run(name, ["--preset", "paper-cifar10", "--data-root", "data", *COMMON, *extra], monkeypatch, workdir)
        trials = results.read_trials(str(workdir / "results" / name))
        assert code == 0 and len(trials) == n, (name, trials[["row", "status", "error"]])
        assert set(trials["status"]) <= {"completed", "collapsed"}, (name, trials[["row", "status", "error"]])
        assert trials["probe_acc"].between(0, 100).all(), name
        check_table2(trials, "paper-cifar10", workdir, importlib.import_module(f"studies.{name}").STUDY)
        spec = json.loads((workdir / "results" / name / "study.json").read_text())
        assert spec["fixed"]["base"]["data_root"] == str(workdir / "data")  # resolved before it was written down
    ks = results.read_trials(str(workdir / "results" / "knowledge_source")).set_index("row")
    assert (ks.loc["discriminator-multi", "feature_dim"], ks.loc["discriminator-single", "feature_dim"]) == (44, 16)
    assert ks.loc["discriminator-multi", "generator"] == str(workdir / "checkpoints" / "cifar10u-cifar-ada-best-fid.pkl")
    # Eq. 3's encoder inverts the official G through its synthesis network, predicting w+ (one w per layer)
    assert ks.loc["latent-encoding-syn", "method"] == "encode" and ks.loc["latent-encoding-syn", "loss_latent"] > 0
    assert (ks.loc["latent-encoding-syn", "batch_size"], ks.loc["latent-encoding-syn", "lpips_net"]) == (128, "alex")
    assert ks["probe_acc_best"].notna().all() and (ks["probe_acc_best"] >= ks["probe_acc"]).all()
    gap = results.read_trials(str(workdir / "results" / "domain_gap"))
    assert gap["mmd_syn_real"].notna().all()
    assert "| discriminator-multi |" in capsys.readouterr().out  # each study printed its table


def test_generators_study_on_a_folder_of_snapshots_records_fids_and_plots(workdir, cluster, monkeypatch):
    argv = ["--preset", "paper-cifar10", "--data-root", "data", *COMMON]
    # without --generators the zoo's digits GANs would be used: refused, one line and exit 2 (sqsp/cli.py)
    code = run("generators", argv, monkeypatch, workdir)
    assert code == 2 and not (workdir / "results" / "generators").exists()
    # without the Inception weights, only the recorded FID could be had: refused before any trial
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("TORCH_HOME", str(workdir / "empty-cache"))
    study = dataclasses.replace(importlib.import_module("studies.generators").STUDY, preset="paper-cifar10")
    with pytest.raises(ConfigError, match=r"Inception-v3 weights at .*empty-cache.*inception_v3_google"):
        run_study(study, storage="results", generators="runs/*/*.pkl", manifests=[str(workdir / "fids.json")],
                  overrides=["data_root=data", "stylegan_repo=stylegan2-ada-pytorch", *SHRINK])

    code = run("generators", [*argv, "--generators", "runs/*/network-snapshot-*.pkl", "--fid-samples", "8",
                              "--manifest", "fids.json"], monkeypatch, workdir)
    trials = results.read_trials(str(workdir / "results" / "generators")).set_index("row")
    assert code == 0 and sorted(trials.index) == ["00000-cifar10@100", "00000-cifar10@200"], trials
    assert set(trials["status"]) <= {"completed", "collapsed"}, trials[["status", "error"]]
    assert trials.loc["00000-cifar10@100", "generator_fid"] == 80.0           # recorded, not recomputed
    # computed in a Ray task, with the 8 samples asked for (the Inception's BN is calibrated: features
    # neither vanish nor explode, so two sets of random images are far apart, not at FID 0)
    assert trials.loc["00000-cifar10@200", "generator_fid"] > 1.0
    assert set(trials["generator_fid_extractor"]) == {"inception-v3-torchvision"}
    assert trials.loc["00000-cifar10@200", "generator_fid_samples"] == 8
    assert list(trials["generator_step"]) == [100, 200]
    assert trials.loc["00000-cifar10@200", "generator"] == str(workdir / "runs" / "00000-cifar10" /
                                                               "network-snapshot-000200.pkl")
    check_table2(trials.reset_index(), "paper-cifar10", workdir, study)
    out = subprocess.run([sys.executable, str(ROOT / "analysis" / "plots.py"), "results/generators"], cwd=workdir,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (workdir / "results" / "generators" / "fig6.png").read_bytes()[:4] == b"\x89PNG"


def test_a_study_runs_on_the_paper_stl10_preset_with_its_lars_probe(workdir, cluster, monkeypatch):
    code = run("blocks", ["--preset", "paper-stl10", "--data-root", "data", *COMMON, "--storage", "results-stl",
                          "--set", "student=resnet18-cifar"], monkeypatch, workdir)
    trials = results.read_trials(str(workdir / "results-stl" / "blocks"))
    assert code == 0 and len(trials) == 4 and set(trials["status"]) <= {"completed", "collapsed"}, trials
    # appendix Table 6's groups on the 128-px generator: each reads its two blocks
    assert dict(zip(trials["row"], trials["generator_blocks_read"])) == {
        "b4-b8": "b4,b8", "b16-b32": "b16,b32", "b64-b128": "b64,b128", "all": "b4,b8,b16,b32,b64,b128"}
    assert (trials["probe_optimizer"] == "lars").all() and (trials["probe_batch_size"] == 4096).all()
    assert (trials["probe_lr"] == 0.1).all() and (trials["aug_preset"] == "mocov2").all()
    check_table2(trials, "paper-stl10", workdir, importlib.import_module("studies.blocks").STUDY)
