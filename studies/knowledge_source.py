"""Table 1: which knowledge of the GAN to transfer — its discriminator, the generator's latent
``w`` or its block features — and how: direct use, vanilla distillation (with augmentation),
squeeze, squeeze and span.

    python studies/knowledge_source.py                     # smoke: 10 rows x 3 seeds
    python studies/knowledge_source.py --preset paper-cifar10 --data-root data/

Vanilla distillation regresses the raw target (w, or the concatenated pooled features) with
MSE alone, as row b of the ablation; squeeze adds T_φ with L_var and L_cov (row e); squeeze
and span mixes in real images (row f). The discriminator rows train nothing: the GAN's
discriminator (kept with a zoo entry, or ``D`` of the official pickle at the paper presets)
reads the real images directly (its penultimate vector, or Eq. 2's pooled block outputs
with that vector), under the preset's probe. The encoding rows train a post-hoc encoder
that inverts G as the authors' encode.py does (Eq. 3: the encoder predicts w+, and L1 + LPIPS
on the re-rendered image + λ ||E(G(z)) − w||², on generated images, or with real images too)
and probe it like a student, at encode.py's scale (batch 128, lr 0.005, a 2-layer projector:
the preset's line for method='encode'). At the paper presets LPIPS needs torchvision's ImageNet
AlexNet in the torch cache; where it is missing, those two rows are printed as "needs LPIPS
weights: <file> in <folder>" and the other rows run. The embedded default, offline, uses
LPIPS's construction on the zoo classifier's features instead (``lpips_net=zoo-classifier``,
shown in the table's "perceptual" column): not LPIPS, so that all ten rows run.

The study itself (rows, seeds, table) is declared in studies/knowledge_source.yaml; this file runs it
(``python -m sqsp.tune --config studies/knowledge_source.yaml`` is the same).
"""
import sys
from pathlib import Path

from sqsp.tune import read_study, study_main

STUDY = read_study(Path(__file__).with_suffix(".yaml"))

if __name__ == "__main__":
    sys.exit(study_main(STUDY))
