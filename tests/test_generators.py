"""Generator interface: block discovery (appendix B.3), selection, embedded architectures,
our checkpoint format and the official-pickle loader."""
from __future__ import annotations

import pickle
import sys
import textwrap

import pytest
import torch
from torch import nn

from sqsp.config import parse_blocks
from sqsp.generators import build_architecture, load_checkpoint, make_network, save_checkpoint
from sqsp.generators.base import FeatureGenerator
from sqsp.generators.official import REPO_ENV, load_official


class PlainGenerator(nn.Module):
    """Several layers per resolution; the last one at each resolution is the block."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16 * 4 * 4)
        self.conv4a, self.conv4b = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 12, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.conv8a, self.conv8b = nn.Conv2d(12, 10, 3, padding=1), nn.Conv2d(10, 6, 3, padding=1)
        self.to_rgb = nn.Conv2d(6, 3, 1)

    def forward(self, z):
        x = self.fc(z).view(-1, 16, 4, 4)
        x = self.conv4b(torch.relu(self.conv4a(x)))
        x = self.conv8b(self.conv8a(self.up(x)))
        return torch.tanh(self.to_rgb(x))


class TupleBlock(nn.Module):
    """Returns (x, img) like an official StyleGAN2 synthesis block."""

    def __init__(self, cin, cout, up):
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.torgb = nn.Conv2d(cout, 3, 1)

    def forward(self, x, img):
        if self.up:
            x = nn.functional.interpolate(x, scale_factor=2)
        x = self.conv(x)
        y = self.torgb(x)
        return x, y if img is None else nn.functional.interpolate(img, scale_factor=2) + y


class TupleGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, 20, 4, 4))
        self.b4, self.b8, self.b16 = TupleBlock(20, 24, False), TupleBlock(24, 14, True), TupleBlock(14, 5, True)

    def forward(self, z):
        x, img = self.b4(self.const.expand(len(z), -1, -1, -1) * z[:, :1, None, None], None)
        x, img = self.b8(x, img)
        x, img = self.b16(x, img)
        return img


def test_blocks_grouped_by_output_resolution_last_layer_wins():
    g = FeatureGenerator(PlainGenerator(), z_dim=8, resolution=8, channels=3)
    assert [(b.name, b.module, b.channels) for b in g.blocks] == [("b4", "conv4b", 12), ("b8", "conv8b", 6)]
    out = g(*g.sample_inputs(5, "cpu"))
    assert out.images.shape == (5, 3, 8, 8)
    assert out.features["b4"].shape == (5, 12, 4, 4) and out.features["b8"].shape == (5, 6, 8, 8)
    assert out.w is None


def test_blocks_returning_tuples_use_the_feature_not_the_image():
    g = FeatureGenerator(TupleGenerator(), z_dim=4, resolution=16, channels=3)
    # b16's torgb output is the image itself and b16 returns (x, img): the block is b16 with x's 5 channels
    assert [(b.name, b.module, b.channels) for b in g.blocks] == [("b4", "b4", 24), ("b8", "b8", 14),
                                                                  ("b16", "b16", 5)]
    out = g(*g.sample_inputs(3, "cpu"), blocks=g.select(["b8", "b16"]))
    assert set(out.features) == {"b8", "b16"}
    assert out.features["b16"].shape == (3, 5, 16, 16)


def test_block_selection_groups_and_errors():
    g = build_architecture("stylegan", resolution=16)
    assert g.block_names == ["b4", "b8", "b16"]
    assert [b.name for b in g.select(parse_blocks("b4-b8"))] == ["b4", "b8"]
    assert [b.name for b in g.select(parse_blocks("all"))] == ["b4", "b8", "b16"]
    with pytest.raises(ValueError, match=r"no block \['b32'\].*\['b4', 'b8', 'b16'\]"):
        g.select(parse_blocks("b16-b32"))
    with pytest.raises(ValueError, match="b64"):
        g.select(parse_blocks("b64-b128"))


@pytest.mark.parametrize("arch", ["stylegan", "dcgan"])
@pytest.mark.parametrize("c_dim", [0, 10])
def test_embedded_architectures(arch, c_dim):
    g = build_architecture(arch, resolution=16, c_dim=c_dim, seed=3)
    assert g.block_names == ["b4", "b8", "b16"] and g.conditional == (c_dim > 0)
    z, c = g.sample_inputs(6, "cpu", torch.Generator().manual_seed(0))
    out = g(z, c)
    assert out.images.shape == (6, 3, 16, 16)
    assert out.images.min() >= -1 and out.images.max() <= 1
    assert [out.features[b.name].shape[1] for b in g.blocks] == [b.channels for b in g.blocks]
    assert (out.w is not None) == (arch == "stylegan")
    assert not any(p.requires_grad for p in g.parameters()) and not g.net.training
    # deterministic from the seed, and the seed matters
    same = build_architecture(arch, resolution=16, c_dim=c_dim, seed=3)(z, c).images
    other = build_architecture(arch, resolution=16, c_dim=c_dim, seed=4)(z, c).images
    assert torch.equal(out.images, same) and not torch.allclose(out.images, other)
    if c_dim:
        with pytest.raises(ValueError, match="class-conditional"):
            g.net(z, None)


def test_stylegan_at_32px_has_one_more_block():
    assert build_architecture("stylegan", resolution=32).block_names == ["b4", "b8", "b16", "b32"]
    with pytest.raises(ValueError, match="unknown generator architecture 'biggan'.*dcgan"):
        build_architecture("biggan", resolution=16)


def test_checkpoint_round_trip_safetensors_and_torch(tmp_path):
    kwargs = dict(resolution=16, channels=3, z_dim=64, c_dim=10)
    net = make_network("stylegan", seed=1, **kwargs)
    with torch.no_grad():  # move w_avg off zero so that buffers are checked too
        net.mapping.w_avg.normal_()
    path, side = save_checkpoint(net, "stylegan", kwargs, tmp_path / "g.safetensors")
    assert path.is_file() and side.is_file() and not list(tmp_path.glob("*.tmp"))
    loaded = load_checkpoint(path, truncation=0.5)
    ref = build_architecture("stylegan", seed=1, truncation=0.5, **kwargs)
    ref.net.mapping.w_avg.copy_(net.mapping.w_avg)
    z, c = ref.sample_inputs(4, "cpu", torch.Generator().manual_seed(0))
    assert torch.equal(loaded(z, c).images, ref(z, c).images)
    torch.save({"arch": "stylegan", "kwargs": kwargs, "state_dict": net.state_dict()}, tmp_path / "g.pt")
    assert torch.equal(load_checkpoint(tmp_path / "g.pt", truncation=0.5)(z, c).images, ref(z, c).images)
    side.unlink()
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# official-style pickle
# ---------------------------------------------------------------------------------------------
FAKE_NETWORKS = textwrap.dedent('''
    import torch
    from torch import nn

    class MappingNetwork(nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, num_ws):
            super().__init__()
            self.num_ws = num_ws
            self.fc = nn.Linear(z_dim + c_dim, w_dim)
        def forward(self, z, c, truncation_psi=1, truncation_cutoff=None):
            w = torch.relu(self.fc(torch.cat([z, c], 1)))
            return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    class SynthesisBlock(nn.Module):
        def __init__(self, cin, cout, w_dim, res):
            super().__init__()
            self.res = res
            self.affine = nn.Linear(w_dim, cout)
            self.conv0 = nn.Conv2d(max(cin, 1), cout, 3, padding=1)
            self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
            self.torgb = nn.Conv2d(cout, 3, 1)
            self.const = nn.Parameter(torch.randn(cout, 4, 4)) if cin == 0 else None
        def forward(self, x, img, ws, noise_mode='random', force_fp32=False):
            if self.const is not None:
                x = self.const.expand(len(ws), -1, -1, -1)
            else:
                x = self.conv0(nn.functional.interpolate(x, scale_factor=2))
            x = self.conv1(x) * self.affine(ws[:, 0])[:, :, None, None]
            y = self.torgb(x)
            img = y if img is None else nn.functional.interpolate(img, scale_factor=2) + y
            return x, img

    class SynthesisNetwork(nn.Module):
        def __init__(self, w_dim, img_resolution):
            super().__init__()
            self.b4 = SynthesisBlock(0, 16, w_dim, 4)
            self.b8 = SynthesisBlock(16, 8, w_dim, 8)
        def forward(self, ws, **kw):
            x, img = self.b4(None, None, ws, **kw)
            x, img = self.b8(x, img, ws, **kw)
            return img

    class Generator(nn.Module):
        def __init__(self, z_dim=6, c_dim=0, w_dim=5, img_resolution=8, img_channels=3):
            super().__init__()
            self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
            self.img_resolution, self.img_channels = img_resolution, img_channels
            self.num_ws = 4  # the official Generator's synthesis.num_ws, kept on G too
            self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws)
            self.synthesis = SynthesisNetwork(w_dim, img_resolution)
        def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
            self.seen_kwargs = dict(synthesis_kwargs, truncation_psi=truncation_psi)
            return 1.5 * self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi), **synthesis_kwargs)
''')


@pytest.fixture
def fake_official(tmp_path, monkeypatch):
    """A fake 'official repo' (dnnlib, torch_utils, training/networks.py) and a pickle of
    its Generator, whose classes are importable only with the repo on sys.path."""
    repo = tmp_path / "stylegan2-ada-pytorch"
    for pkg in ("dnnlib", "torch_utils", "training"):
        (repo / pkg).mkdir(parents=True)
        (repo / pkg / "__init__.py").write_text("")
    (repo / "training" / "networks.py").write_text(FAKE_NETWORKS)
    monkeypatch.setattr(sys, "path", [str(repo), *sys.path])
    for m in ("dnnlib", "torch_utils", "training", "training.networks"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    from training.networks import Generator  # noqa: the fake official module
    torch.manual_seed(0)
    G = Generator(c_dim=4)
    pkl = tmp_path / "network-snapshot.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"G": G, "D": None, "G_ema": G, "augment_pipe": None}, f)
    # from here on, the classes must come back through the loader's repo path
    sys.path.remove(str(repo))
    for m in ("dnnlib", "torch_utils", "training", "training.networks"):
        sys.modules.pop(m, None)
    monkeypatch.delenv(REPO_ENV, raising=False)
    yield repo, pkl
    for m in ("dnnlib", "torch_utils", "training", "training.networks"):
        sys.modules.pop(m, None)


def test_official_pickle_loader(fake_official, monkeypatch):
    repo, pkl = fake_official
    with pytest.raises(ModuleNotFoundError, match=f"{REPO_ENV}=/path/to/checkout"):
        load_official(pkl)
    with pytest.raises(ModuleNotFoundError, match=r"does not contain \['dnnlib', 'torch_utils'\]"):
        load_official(pkl, repo=repo / "training")
    monkeypatch.setenv(REPO_ENV, str(repo))
    g = load_official(pkl, truncation=0.7)
    assert (g.z_dim, g.c_dim, g.resolution, g.conditional) == (6, 4, 8, True)
    assert [(b.name, b.module, b.channels) for b in g.blocks] == [("b4", "synthesis.b4", 16),
                                                                  ("b8", "synthesis.b8", 8)]
    out = g(*g.sample_inputs(3, "cpu"))
    assert out.images.shape == (3, 3, 8, 8) and out.images.abs().max() <= 1
    assert out.features["b8"].shape == (3, 8, 8, 8)
    assert out.w.shape == (3, 5)  # (N, num_ws, w_dim) -> first w
    # the official default and what the authors' SynDataGenerator samples with
    assert g.net.seen_kwargs == {"noise_mode": "random", "force_fp32": True, "truncation_psi": 0.7}
    assert load_official(pkl, noise_mode="const")(*g.sample_inputs(1, "cpu")) is not None
    assert g.net.seen_kwargs["noise_mode"] == "random"  # each load its own network
    # the encoder's w+: one w per synthesis layer goes in as it is, one w is broadcast
    w = torch.randn(2, 5)
    assert g.num_ws == 4 and torch.equal(g.synthesize(w), g.synthesize(w[:, None].repeat(1, 4, 1)))
    with pytest.raises(ValueError, match=r"w\+ of shape \(2, 3, 5\)"):
        g.synthesize(torch.randn(2, 3, 5))
    assert not any(p.requires_grad for p in g.parameters())


def test_training_runs_on_an_official_pickle_named_in_the_config(fake_official):
    """The config's stylegan_repo reaches the loader: no environment variable needed."""
    from sqsp.config import ConfigError, preset
    from sqsp.train import build_run, train_step
    repo, pkl = fake_official
    small = {"generator": str(pkl), "steps": 1, "batch_size": 16, "squeeze_width": 16, "teacher_dim": 16,
             "projector_dim": 16, "eval_init": False, "device": "cpu"}
    with pytest.raises(ConfigError, match=r"stylegan_repo='/no/such/checkout' is not a directory"):
        preset("smoke", {**small, "stylegan_repo": "/no/such/checkout"})
    run = build_run(preset("smoke", {**small, "stylegan_repo": str(repo)}))
    assert run.synthetic.generator.conditional and run.synthetic.teacher_dims == [16, 8]
    assert torch.isfinite(train_step(run)["loss"])


def test_official_loader_refuses_non_pickles_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="not a .pkl"):
        load_official(tmp_path / "g.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_official(tmp_path / "missing.pkl")
