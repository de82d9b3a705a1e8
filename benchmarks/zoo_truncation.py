"""A zoo entry's sample-quality measures at several truncations ψ (sqsp/quality.py).

    python benchmarks/zoo_truncation.py                                  # stylegan-digits-m, 2,000 samples
    python benchmarks/zoo_truncation.py --entry stylegan-digits-m-cond --samples 10000 --psi 1 0.7

Truncation pulls the mapped latents toward their mean, the usual way to trade a GAN's diversity
(recall) for fidelity (precision, the classifier's confidence). One thread, seed 0, the zoo's
classifier as the judge and its features of the train split as the reference, as `sqsp-zoo list`.
"""
from __future__ import annotations

import argparse
import os

import torch

from sqsp import fid as fidlib
from sqsp import quality, zoo
from sqsp.zoo_build import CLASSIFIER, _digits, zoo_dir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/zoo_truncation.py", description=__doc__.splitlines()[0])
    p.add_argument("--entry", default="stylegan-digits-m")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--psi", type=float, nargs="+", default=[1.0, 0.8, 0.7, 0.6, 0.5])
    args = p.parse_args(argv)
    bad = [v for v in args.psi if not 0 < v <= 1]
    if bad:
        p.error(f"--psi {bad}: each truncation must lie in (0, 1]")
    torch.set_num_threads(1)
    zoo.ensure([args.entry])
    _, info = zoo.load_classifier()
    extractor = fidlib.load_classifier_extractor(zoo_dir() / info["file"], name=CLASSIFIER,
                                                 expected_sha256=info["sha256"])
    x_train, _, _ = _digits("train")
    reference = fidlib.image_features(extractor, x_train)
    print(f"# {args.entry}, {args.samples} samples, seed 0; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| ψ | P | R | D | C | conf | top | probe | misses |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|:--|")
    for psi in args.psi:
        g = zoo.load_generator(args.entry, truncation=psi)
        q = quality.measure_generator(g, extractor.model, reference, n_samples=args.samples, seed=0).to_dict()
        cells = " | ".join(f"{q[k]:.2f}" for k in ("precision", "recall", "density", "coverage", "confidence",
                                                    "largest_class", "probe"))
        print(f"| {psi:g} | {cells} | {', '.join(quality.failures(q, g.conditional))} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
