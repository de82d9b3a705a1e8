"""Fig. 2 of the paper: three representations of the same generated images, coloured by class.

For ``n`` images G(z) of the config's generator:

- ``discriminator``: Eq. 2, the globally pooled output of each block of the GAN's
  discriminator and its penultimate vector, concatenated (``discriminator.DiscriminatorBackbone``,
  mode ``multi``, as Table 1 reads it): a zoo entry's or ``D`` of an official pickle;
- ``latent``: the latent ``w`` (the mapping network's output) that produced the image;
- ``generator``: Eq. 4, the globally pooled output of each generator block, concatenated.

Generated images have no labels, so a classifier labels them, as the authors' ``plot_umap.py``
does with ``--cpath``: by default the zoo's own classifier (trained on the dataset the zoo's
GANs were trained on, which must be the generator's), or any classifier of the user's
(``--classifier``: one of our ``.safetensors`` classifiers, or a ``torch.export`` program
(``.pt2``, exported with a dynamic batch dimension) taking images in [-1, 1] at the
generator's resolution and returning logits).

Each representation is embedded in 2-D by UMAP (umap-learn, the paper's ref. [45]) with the
seed as its random state. ``representations.parquet`` holds, per seed, sample and
representation: the label, the 2-D point and the full feature vector, so that ``analysis/``
draws the figure and measures how class-clustered each panel is from the file alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import TrainConfig, is_zoo_name, parse_generator
from .generators.base import FeatureGenerator

FILE = "representations.parquet"
KIND = "representations"
REPRESENTATIONS = ("discriminator", "latent", "generator")
_BATCH = 250


@dataclass
class Labeller:
    """A classifier of generated images: ``predict`` maps images in [-1, 1] to class indices."""
    predict: Callable[[torch.Tensor], torch.Tensor]
    info: dict[str, Any]


def load_labeller(spec: str | None, generator_spec: str, *, device: torch.device) -> Labeller:
    """``spec`` None: the zoo's classifier, refused when the zoo entry ``generator_spec`` was
    trained on another dataset than the classifier (its labels would mean nothing)."""
    if spec is None:
        from . import zoo
        if not is_zoo_name(generator_spec):
            raise ValueError(f"generator {generator_spec!r} is not a zoo entry, so the zoo's classifier does not know "
                             "its classes; pass --classifier PATH (a .safetensors classifier of ours or a torch.export "
                             ".pt2 program: images in [-1, 1] -> logits)")
        known = zoo.ensure(generator_spec)
        model, info = zoo.load_classifier(device=device)
        gen_data = known.get(generator_spec, {}).get("dataset")
        if gen_data != info.get("dataset"):
            raise ValueError(f"generator {generator_spec!r} was trained on {gen_data!r} but the zoo's classifier "
                             f"{info['name']!r} on {info.get('dataset')!r}; pass --classifier PATH for its classes")
        return Labeller(lambda x: model(x).argmax(1), {"classifier": info["name"], "classifier_dataset": info["dataset"],
                                                       "classifier_test_accuracy": info.get("test_accuracy")})
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"classifier {spec!r} does not exist")
    if path.suffix == ".safetensors":
        import json

        from .fid import load_classifier_extractor
        model = load_classifier_extractor(path, name=path.stem, device=device).model
        side = json.loads(path.with_suffix(".json").read_text())
        return Labeller(lambda x: model(x).argmax(1), {"classifier": str(path), "classifier_dataset": side.get("dataset"),
                                                       "classifier_test_accuracy": side.get("test_accuracy")})
    if path.suffix == ".pt2":
        # torch.export's format, not a pickle: loading it runs no Python code of the file's choosing
        module = torch.export.load(str(path)).module().to(device)
        return Labeller(lambda x: module(x).argmax(1), {"classifier": str(path)})
    raise ValueError(f"classifier {spec!r}: unknown file type {path.suffix!r}; allowed: .safetensors (with its .json "
                     "sidecar, as sqsp writes them) or a torch.export program (.pt2)")


def load_discriminator(generator_spec: str, *, device: torch.device,
                       stylegan_repo: str | None = None) -> nn.Module | None:
    """Eq. 2's features of the discriminator trained with the generator (a zoo entry's, or ``D``
    of an official pickle) as a backbone, or None where there is none to read."""
    if not parse_generator(generator_spec).may_have_discriminator:
        return None
    from . import zoo
    from .discriminator import DiscriminatorBackbone
    try:
        disc = zoo.load_discriminator(generator_spec, device=device, stylegan_repo=stylegan_repo)
    except LookupError:
        return None
    return DiscriminatorBackbone(disc, "multi")


@torch.no_grad()
def gan_representations(generator: FeatureGenerator, labeller: Labeller, n: int, *, seed: int,
                        discriminator: nn.Module | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Class labels (n,) and each representation (n, d) of ``n`` images generated from ``seed``;
    ``discriminator`` is ``load_discriminator``'s backbone."""
    if generator.mapping_name is None:
        raise ValueError(f"generator {generator.arch!r} has no mapping network, so there is no latent w to show")
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    labels, reps = [], {k: [] for k in REPRESENTATIONS}
    for i in range(0, n, _BATCH):
        z, c = generator.sample_inputs(min(_BATCH, n - i), device, rng)
        out = generator(z, c)
        images = out.images.float().clamp(-1, 1)
        labels.append(labeller.predict(images).cpu())
        reps["latent"].append(out.w.float().cpu())
        reps["generator"].append(torch.cat([f.float().mean(dim=(2, 3)) for f in out.features.values()], 1).cpu())
        if discriminator is not None:  # D reads images as real data arrives: 8-bit
            uint8 = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            reps["discriminator"].append(discriminator(uint8.float() / 255).cpu())
    return torch.cat(labels).numpy(), {k: torch.cat(v).numpy() for k, v in reps.items() if v}


def umap_embedding(x: np.ndarray, *, seed: int) -> np.ndarray:
    """UMAP to 2-D with umap-learn's defaults (15 neighbours, min_dist 0.1), as the authors call it."""
    import warnings

    import umap
    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": wanted, for determinism
        warnings.simplefilter("ignore", UserWarning)
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)


def representations_frame(config: TrainConfig, seeds: list[int], n: int, labeller: Labeller,
                          progress: Callable[[str], None] = lambda s: None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per seed × representation × sample: label, UMAP point, features; and the
    metadata the figure cites (generator, classifier, what is missing)."""
    from . import zoo
    from .device import resolve_device
    device = resolve_device(config.device)
    generator = zoo.load_generator(config.generator, device=device, truncation=config.truncation,
                                   stylegan_repo=config.stylegan_repo)
    disc = load_discriminator(config.generator, device=device, stylegan_repo=config.stylegan_repo)
    info = {"generator": config.generator, "n_samples": n, "seeds": seeds, **labeller.info,
            **{k: v for k, v in zoo.describe(config.generator).items() if k.startswith("generator_")}}
    if disc is None:
        info["missing"] = {"discriminator": f"generator {config.generator!r} has no discriminator to read (only the "
                                            "zoo's entries and official pickles have one)"}
    frames = []
    for seed in seeds:
        labels, reps = gan_representations(generator, labeller, n, seed=seed, discriminator=disc)
        for name, x in reps.items():
            progress(f"seed {seed}: UMAP of {name} features {x.shape}")
            emb = umap_embedding(x, seed=seed)
            frames.append(pd.DataFrame({"seed": seed, "representation": name, "sample": np.arange(n),
                                        "label": labels.astype(np.int64), "umap_x": emb[:, 0].astype(np.float64),
                                        "umap_y": emb[:, 1].astype(np.float64), "dim": x.shape[1],
                                        "features": list(x.astype(np.float32))}))
    return pd.concat(frames, ignore_index=True), info


def write(df: pd.DataFrame, info: dict[str, Any], folder: str) -> str:
    from .results import write_table
    return write_table(df, folder, FILE, kind=KIND, info=info)


def main(argv: list[str] | None = None) -> str:
    """The command line of ``studies/representations.py``: compute and write; returns the folder."""
    import argparse
    import sys

    from .config import ConfigError, add_run_arguments, config_from_args
    p = argparse.ArgumentParser(prog="python studies/representations.py",
                                description="Fig. 2: UMAP of the discriminator features, the latent w and the generator "
                                            "features of generated images, coloured by a classifier's labels.")
    add_run_arguments(p)
    p.add_argument("--samples", type=int, default=2000, help="generated images per seed (default 2000; the paper 50000)")
    p.add_argument("--classifier", help="a classifier for the generator's classes (default: the zoo's own); "
                                        ".safetensors of ours, or a torch.export .pt2 program taking images in "
                                        "[-1, 1] (dynamic batch dimension) and returning logits")
    args = p.parse_args(argv)
    try:
        cfg, seeds = config_from_args(args)
    except ConfigError as e:
        p.error(str(e))
    if args.samples < 20:
        p.error(f"--samples {args.samples}: need at least 20 images for a neighbourhood embedding")
    from .device import resolve_device
    try:
        labeller = load_labeller(args.classifier, cfg.generator, device=resolve_device(cfg.device))
    except (ValueError, FileNotFoundError, LookupError) as e:
        p.error(str(e))
    df, info = representations_frame(cfg, seeds, args.samples, labeller,
                                     progress=lambda s: print(f"[sqsp] {s}", file=sys.stderr, flush=True))
    folder = os.path.join(os.path.abspath(args.storage), "representations")
    print(f"[sqsp] wrote {write(df, info, folder)}", file=sys.stderr)
    return folder
