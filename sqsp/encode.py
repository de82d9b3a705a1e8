"""Table 1's encoding baseline: a post-hoc encoder that inverts the frozen generator (Eq. 3).

    min_E  LPIPS(G(E(G(z))), G(z)) + λ ||E(G(z)) − w||²        on generated images,
    (1 − α) LPIPS(G(E(x)), x)                                   added for real images x ("Syn. & Real"),

the two parts weighted α and 1 − α as span weights its batch (the authors' ``encode.py``). The
encoder is the student's backbone with its projector ending in ``w``'s dimension, trained by
``sqsp.train``'s one loop (``method="encode"``) and probed like any other student.

As the authors' code (not Eq. 3's letter): the encoder predicts w+ (one w per synthesis layer of
the generator, ``FeatureGenerator.num_ws``; one for the embedded generators), regressed onto the
mapping network's w at every layer, and the image term is L1 + LPIPS on images in [-1, 1].

LPIPS (Zhang et al. 2018) is the ``lpips`` package: its wheel ships the learned linear heads,
and the trunk (AlexNet by default) is torchvision's ImageNet model, which torchvision reads
from its cache (``$TORCH_HOME/hub/checkpoints``) and would otherwise download. sqsp never
downloads it: ``missing_lpips_weights`` says what is missing and where it goes, so a study
can mark its encoding rows before any trial starts.

Offline, at the embedded scale, ``lpips_net='zoo-classifier'`` is LPIPS's construction on the
zoo's digits classifier instead of an ImageNet trunk (``TrunkDistance``): not LPIPS, and labelled
as such wherever it is reported (the config's ``lpips_net`` is a column of every result).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .data import resize

def _trunk_weights(net: str):
    """The torchvision weights the ``lpips`` package asks for with ``pretrained=True``."""
    from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights
    trunks = {"alex": AlexNet_Weights.IMAGENET1K_V1, "vgg": VGG16_Weights.IMAGENET1K_V1,
              "squeeze": SqueezeNet1_1_Weights.IMAGENET1K_V1}
    if net not in trunks:
        raise ValueError(f"lpips_net={net!r} is not allowed; allowed: {sorted(trunks)}")
    return trunks[net]


def lpips_trunk_path(net: str = "alex") -> Path:
    """Where torchvision looks for the trunk's weights (the torch hub cache, ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_trunk_weights(net).url)


def missing_lpips_weights(net: str = "alex") -> str | None:
    """None when LPIPS can be built offline; else what is missing, in the form tables print."""
    if net == "zoo-classifier":
        return None  # the zoo trains its classifier on first use
    path = lpips_trunk_path(net)
    if path.is_file():
        return None
    return f"needs LPIPS weights: {path.name} in {path.parent}"


def _unit(f: torch.Tensor) -> torch.Tensor:
    """LPIPS's normalisation: each location's feature vector scaled to unit length over channels."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)


class TrunkDistance(nn.Module):
    """LPIPS's construction (Zhang et al. 2018, Eq. 1) with unit channel weights (the package's
    ``lpips=False`` baseline) on another trunk: at every tapped stage, the squared difference of
    the channel-normalised features, summed over channels and averaged over positions; summed
    over stages. Returns (N,) distances for images in [-1, 1]."""

    def __init__(self, stages: list[nn.Module], resolution: int):
        super().__init__()
        self.stages, self.resolution = nn.ModuleList(stages), resolution
        self.min_size = resolution

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = resize(a, self.resolution), resize(b, self.resolution)
        d = a.new_zeros(len(a))
        for stage in self.stages:
            a, b = stage(a), stage(b)
            d = d + (_unit(a) - _unit(b)).pow(2).sum(dim=1).mean(dim=(1, 2))
        return d


def classifier_distance(classifier: nn.Module) -> TrunkDistance:
    """``TrunkDistance`` on the conv stages of ``sqsp.fid.SmallClassifier`` (each after its ReLU)."""
    body = classifier.body
    return TrunkDistance([body[0], nn.Sequential(body[1], body[2]), nn.Sequential(body[3], body[4])],
                         classifier.resolution)


def load_lpips(net: str = "alex", *, device: str | torch.device = "cpu", dataset: str | None = None) -> nn.Module:
    """The frozen LPIPS distance with ``net``'s trunk, in eval mode on ``device``.

    Raises FileNotFoundError (saying where the file goes and how to get it) instead of letting
    torchvision try a download. ``net='zoo-classifier'``: ``classifier_distance`` on the zoo's
    classifier, which must have been trained on ``dataset``."""
    if net == "zoo-classifier":
        from . import zoo  # late: the zoo builds GANs; only this offline stand-in needs it
        classifier, info = zoo.load_classifier(device=device)
        if dataset is not None and info.get("dataset") != dataset:
            raise ValueError(f"lpips_net='zoo-classifier' uses the zoo's classifier, trained on "
                             f"{info.get('dataset')!r}, not on dataset={dataset!r}; use an LPIPS trunk "
                             "(lpips_net='alex') for this dataset")
        return classifier_distance(classifier).to(device).eval().requires_grad_(False)
    missing = missing_lpips_weights(net)
    if missing is not None:
        url = _trunk_weights(net).url
        raise FileNotFoundError(
            f"method='encode' {missing} (torchvision's ImageNet trunk of LPIPS, {url}). sqsp does not download "
            "it: on a machine with internet run `python -c \"import lpips; lpips.LPIPS(net='%s')\"` and copy the "
            "file there (or point TORCH_HOME at a cache that has it)." % net)
    import lpips
    with warnings.catch_warnings():  # lpips passes torchvision the deprecated pretrained=True
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, verbose=False)
    return model.to(device).eval().requires_grad_(False)
