"""Every preset validates, dicts round-trip, and every bad value is refused with a message
that names the field, the value and what is allowed."""
import pytest

from sqsp.config import PRESETS, ConfigError, TrainConfig, parse_blocks, preset


def test_paper_presets_hold_appendix_table2(tmp_path):
    # appendix Table 2: batch, epochs, base_lr, wd, scale, λ, μ, ν, α
    table2 = {
        "paper-cifar10": (512, 800, 0.03, 5e-4, 32, 25, 25, 1, 0.5, "mocov2-noblur"),
        "paper-cifar100": (512, 800, 0.03, 5e-4, 32, 10, 10, 1, 0.5, "mocov2-noblur"),
        "paper-stl10": (512, 200, 0.05, 1e-4, 64, 25, 25, 1, 0.5, "mocov2"),
        "paper-imagenet100": (256, 100, 0.05, 1e-4, 96, 25, 25, 1, 0.5, "mocov2"),
        "paper-imagenet": (256, 100, 0.05, 1e-4, 96, 25, 25, 1, 0.5, "mocov2"),
    }
    for name, row in table2.items():
        c = preset(name, {"data_root": str(tmp_path)})
        assert (c.batch_size, c.epochs, c.base_lr, c.weight_decay, c.image_size, c.sim_weight, c.var_weight,
                c.cov_weight, c.syn_ratio, c.aug_preset) == row, name
        assert c.lr == pytest.approx(c.base_lr * c.batch_size / 256)
        # the probe of the authors' eval_linear scripts: CIFAR SGD lr 30 batch 256; STL-10 --lars, lr 0.1, 4096,
        # which are eval_classification.py's defaults, what the ImageNet presets (no script) run too
        want = ("sgd", 256, 30.0) if name in ("paper-cifar10", "paper-cifar100") else ("lars", 4096, 0.1)
        assert (c.probe, c.probe_optimizer, c.probe_batch_size, c.probe_lr, c.probe_epochs) == ("paper", *want, 90)
        # sns.py: variance/covariance on the student's side; src/models/backbone: zero_init_residual=True
        assert (c.vc_side, c.student_init) == ("student", "torchvision")
    smoke = preset("smoke")  # the embedded default keeps its own choices
    assert (smoke.vc_side, smoke.student_init, smoke.fix_pred_lr) == ("both", "pytorch", False)


def test_the_method_picks_its_line_of_the_preset_and_explicit_values_win(tmp_path):
    from sqsp.config import row_scale
    root = {"data_root": str(tmp_path)}
    enc = {**root, "method": "encode", "syn_augment": False}
    for name in ("paper-cifar10", "paper-cifar100"):
        e = preset(name, enc)  # encode.py's defaults: batch 128, lr 0.01 (x 128/256 = 0.005), 2-layer projector
        assert (e.batch_size, e.base_lr, e.lr, e.projector_depth) == (128, 0.01, 0.005, 2)
        s = preset(name, {**root, "method": "simsiam"})  # *_simsiam_cifar*.sh
        assert (s.projector_depth, s.fix_pred_lr, s.batch_size, s.base_lr) == (2, True, 512, 0.03)
    assert preset("paper-stl10", {**root, "method": "simsiam"}).projector_depth == 3  # *_simsiam_stl10.sh
    v = preset("paper-cifar100", {**root, "method": "vicreg"})  # vicreg.py's 25/25, not sns.py's 10/10
    assert (v.sim_weight, v.var_weight) == (25.0, 25.0)
    assert preset("paper-cifar100", root).sim_weight == 10.0
    assert preset("paper-cifar10", {**enc, "batch_size": 64}).batch_size == 64  # --set wins
    # a study row: its method's line where the base holds the preset's value, the user's --set elsewhere
    base = preset("paper-cifar100", {**root, "base_lr": 0.1}).to_dict()
    assert row_scale("paper-cifar100", base, {"method": "encode"}) == {"batch_size": 128, "projector_depth": 2,
                                                                        "method": "encode"}
    assert row_scale("paper-cifar100", base, {"method": "vicreg", "sim_weight": 5.0}) == \
        {"var_weight": 25.0, "method": "vicreg", "sim_weight": 5.0}  # the row's own value comes last
    enc_base = preset("paper-cifar10", enc).to_dict()  # and back: a distill row on an encode base
    assert row_scale("paper-cifar10", enc_base, {"method": "distill"}) == {
        "base_lr": 0.03, "batch_size": 512, "projector_depth": 5, "method": "distill"}
    assert row_scale("smoke", preset("smoke").to_dict(), {"method": "simsiam"}) == {"method": "simsiam"}
    with pytest.raises(ConfigError, match="method='gan' is not allowed"):
        preset("smoke", {"method": "gan"})


def test_all_presets_build():
    for name in PRESETS:
        cfg = preset(name, {"data_root": "."} if name != "smoke" else None)
        assert isinstance(cfg, TrainConfig)


def test_dict_round_trip():
    c = preset("smoke", ["syn_ratio=0.25", "squeeze=false", "seed=3", "data_root=none"])
    assert c.syn_ratio == 0.25 and c.squeeze is False and c.seed == 3 and c.data_root is None
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("override, words", [
    ({"sim_weight": -1.0}, ["sim_weight", "-1.0", ">= 0"]),
    ({"var_weight": -0.5}, ["var_weight", "-0.5"]),
    ({"syn_ratio": 0.0}, ["syn_ratio", "0.0", "(0, 1]"]),
    ({"syn_ratio": 1.5}, ["syn_ratio", "1.5", "(0, 1]"]),
    ({"batch_size": 3}, ["batch_size", "3", ">= 4"]),
    ({"batch_size": 6, "syn_ratio": 0.9}, ["batch_size=6", "1 real", "at least 2"]),
    ({"generator_blocks": "b4,block8"}, ["generator_blocks", "block8", "allowed"]),
    ({"dataset": "mnist"}, ["dataset", "mnist", "cifar10"]),
    ({"dataset": "cifar10"}, ["data_root", "required", "cifar10"]),
    ({"dataset": "cifar10", "data_root": "/nonexistent/place"}, ["data_root", "/nonexistent/place", "not a directory"]),
    ({"aug_granularity": "pixel"}, ["aug_granularity", "pixel", "sample", "batch"]),
    ({"student": "vit"}, ["student", "vit", "resnet18-cifar"]),
    ({"precision": "fp8"}, ["precision", "fp8", "bf16"]),
    ({"device": "tpu"}, ["device", "tpu", "cuda"]),
    ({"momentum": 1.0}, ["momentum", "[0, 1)"]),
    ({"student": "resnet50", "student_width": 0.5}, ["student_width", "resnet18-cifar"]),
    ({"generator": "random:style gan"}, ["generator", "random:style gan", "random:<arch>[@<resolution>]"]),
    ({"generator": "random:stylegan@"}, ["random:stylegan@", "random:stylegan@16"]),
    ({"generator": ""}, ["generator=''", "zoo name"]),
])
def test_bad_values_are_refused_with_a_clear_message(override, words):
    with pytest.raises(ConfigError) as e:
        preset("smoke", override)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_bad_override_strings():
    with pytest.raises(ConfigError, match="syn_ratio='half' is not a valid float"):
        preset("smoke", ["syn_ratio=half"])
    with pytest.raises(ConfigError, match="unknown config field 'synratio'"):
        preset("smoke", ["synratio=0.5"])
    with pytest.raises(ConfigError, match="key=value"):
        preset("smoke", ["syn_ratio"])
    with pytest.raises(ConfigError, match="squeeze='maybe' is not a valid bool"):
        preset("smoke", ["squeeze=maybe"])
    with pytest.raises(ConfigError, match="unknown preset 'paper-mnist'"):
        preset("paper-mnist")


def test_block_groups():
    assert parse_blocks("all") is None
    assert parse_blocks("b4-b8") == ("b4", "b8")
    assert parse_blocks("b4-b8,b16-b32") == ("b4", "b8", "b16", "b32")
    assert parse_blocks("b8, b4, b8") == ("b8", "b4")
    with pytest.raises(ConfigError, match="names no block"):
        parse_blocks(" , ")


@pytest.mark.parametrize("spec, kind, arch, res, is_file", [
    ("stylegan-digits-m", "zoo", None, None, False),
    ("stylegan-digits-m@600", "zoo", None, None, False),
    ("random:stylegan", "random", "stylegan", None, False),
    ("random:dcgan@32", "random", "dcgan", 32, False),
    ("ckpt/g.pkl", "pickle", None, None, True),
    ("g.pkl", "pickle", None, None, True),
    ("g.safetensors", "checkpoint", None, None, True),
    ("runs/g", "checkpoint", None, None, True),
    ("g.pth", "checkpoint", None, None, True),
])
def test_a_generator_spec_is_parsed_into_one_kind(spec, kind, arch, res, is_file):
    from sqsp.specs import is_zoo_name, parse_generator
    g = parse_generator(spec)
    assert (g.kind, g.arch, g.resolution, g.is_file) == (kind, arch, res, is_file)
    assert g.may_have_discriminator == (kind in ("zoo", "pickle"))
    assert is_zoo_name(spec) == (kind == "zoo")
    assert preset("smoke", {"generator": spec}).generator_spec == g  # the config's own parse is the same


def test_relative_paths_are_made_absolute_against_the_launch_directory(tmp_path):
    from sqsp.config import absolute_paths
    values = {"data_root": "data", "stylegan_repo": "~/sg2", "generator": "checkpoints/../g.pkl", "seed": 1}
    out = absolute_paths(values, tmp_path)
    assert out["data_root"] == str(tmp_path / "data") and out["generator"] == str(tmp_path / "g.pkl")
    assert out["stylegan_repo"].endswith("/sg2") and "~" not in out["stylegan_repo"]
    assert out["seed"] == 1 and values["data_root"] == "data"  # a copy
    for spec in ("stylegan-digits", "stylegan-digits@400", "random:stylegan@16", "/abs/g.safetensors"):
        assert absolute_paths({"generator": spec}, tmp_path)["generator"] == spec
    assert absolute_paths({"data_root": None, "stylegan_repo": None}, tmp_path) == {"data_root": None,
                                                                                   "stylegan_repo": None}


def test_transfer_datasets_resolve_to_the_papers_pairs_and_bad_names_are_refused(tmp_path):
    from sqsp.config import TRANSFER_PAIRS
    root = {"data_root": str(tmp_path)}
    assert preset("paper-cifar10", {**root, "transfer_datasets": "auto"}).transfer_targets == ("cifar100", "stl10")
    assert preset("paper-stl10", {**root, "transfer_datasets": "auto"}).transfer_targets == ("cifar10", "cifar100")
    assert preset("smoke", {"transfer_datasets": " digits, digits "}).transfer_targets == ("digits",)
    assert preset("smoke").transfer_targets == ()
    assert all(set(v) <= set(TRANSFER_PAIRS) | {"digits"} for v in TRANSFER_PAIRS.values())
    with pytest.raises(ConfigError, match="'mnist' is not allowed; allowed: 'auto' or names"):
        preset("smoke", {"transfer_datasets": "digits,mnist"})
    with pytest.raises(ConfigError, match="data_root is required for dataset='cifar100'"):
        preset("smoke", {"transfer_datasets": "cifar100"})
    # an embedded pretraining dataset takes a data_root when a probed dataset reads it
    assert preset("smoke", {**root, "transfer_datasets": "cifar100"}).transfer_targets == ("cifar100",)
    with pytest.raises(ConfigError, match="transfer_datasets='auto': no dataset is paired with dataset='imagefolder'"):
        preset("paper-imagenet100", {**root, "transfer_datasets": "auto"})
