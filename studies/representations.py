"""Fig. 2: UMAP of three representations of generated images — the discriminator's features
(Eq. 2), the latent w and the generator's features (Eq. 4) — coloured by class, with a number
per panel that says how class-clustered it is (kNN accuracy and silhouette in the 2-D plane,
and kNN accuracy in the full representation).

    python studies/representations.py                          # smoke: the zoo's StyleGAN, 2000 images x 3 seeds
    python studies/representations.py --set generator=dcgan-digits-m --samples 5000
    python studies/representations.py --set generator=/ckpt/cifar10u-cifar-ada-best-fid.pkl \\
        --set stylegan_repo=/opt/stylegan2-ada-pytorch --classifier /ckpt/cifar10-classifier.pt2 --samples 50000
    python analysis/plots.py results/representations           # the figure again, from Parquet
    python analysis/tables.py results/representations          # the numbers again

Writes results/representations/{representations.parquet, fig2.png, fig2.pdf}. Not a Ray sweep:
nothing is trained, so one process does it. Generated images are labelled by the zoo's
classifier, or by ``--classifier`` (a torch.export .pt2: images in [-1, 1] -> logits), as the
authors' ``plot_umap.py --cpath``. The discriminator panel needs the GAN's discriminator
(the zoo keeps one per entry, an official pickle holds its ``D``); without it the figure has the
other two panels.
"""
import sys

from analysis.plots import figure_and_table
from sqsp.representations import FILE, main

if __name__ == "__main__":
    paths, table = figure_and_table(main(), FILE)
    print("\n".join(str(p) for p in paths), file=sys.stderr)
    print(table)
