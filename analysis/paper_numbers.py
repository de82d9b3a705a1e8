"""The paper's figures as data (top-1 linear-probe accuracy, %), to print beside ours.

Source: /work/shared/paper (NeurIPS 2022, "Distilling Representations from GAN Generator
via Squeeze and Span"), main text Tables 1-3 and appendix Tables 5-7. Where the authors'
code README disagrees with the paper (STL10 column of Table 2) the paper's number is kept.
"""
from __future__ import annotations

# Table 3 (ablation, CIFAR-10): which components each row has, and its accuracy.
# Components: L_RD (distillation), A (augmentation of synthetic images), T_phi (squeeze),
# L_var, L_cov (regularisers), Span (real images in the batch, alpha < 1).
TABLE3_COMPONENTS = ("L_RD", "A", "T_phi", "L_var", "L_cov", "Span")
TABLE3_ROWS = {
    "a": ("L_RD",),
    "b": ("L_RD", "A"),
    "c": ("L_RD", "A", "T_phi"),
    "d": ("L_RD", "A", "T_phi", "L_var"),
    "e": ("L_RD", "A", "T_phi", "L_var", "L_cov"),
    "f": ("L_RD", "A", "T_phi", "L_var", "L_cov", "Span"),
}
TABLE3_CIFAR10 = {"a": 74.20, "b": 84.48, "c": 10.00, "d": 79.10, "e": 87.67, "f": 92.54}

# Table 1: knowledge source x transfer method -> (CIFAR10, CIFAR100).
TABLE1 = {
    ("discriminator", "direct use (single feature)", "syn+real"): (63.81, 30.11),
    ("discriminator", "direct use (multi-feature)", "syn+real"): (77.58, 51.63),
    ("latent", "encoding", "syn"): (57.15, 32.19),
    ("latent", "encoding", "syn+real"): (50.27, 28.43),
    ("latent", "vanilla distillation (w/ aug)", "syn"): (84.84, 53.26),
    ("latent", "squeeze", "syn"): (86.99, 58.56),
    ("latent", "squeeze and span", "syn+real"): (90.95, 66.17),
    ("generator feature", "vanilla distillation (w/ aug)", "syn"): (84.48, 52.77),
    ("generator feature", "squeeze", "syn"): (87.67, 57.35),
    ("generator feature", "squeeze and span", "syn+real"): (92.54, 67.87),
}

# Table 2: (pretrain data, method) -> {dataset: accuracy}.
TABLE2 = {
    ("real", "simsiam"): {"cifar10": 90.94, "cifar100": 62.44, "stl10": 71.30},
    ("real", "vicreg"): {"cifar10": 89.20, "cifar100": 63.31, "stl10": 74.43},
    ("syn", "simsiam"): {"cifar10": 85.11, "cifar100": 47.89, "stl10": 73.38},
    ("syn", "vicreg"): {"cifar10": 84.68, "cifar100": 52.84, "stl10": 70.80},
    ("syn", "squeeze"): {"cifar10": 87.67, "cifar100": 57.35, "stl10": 73.35},
    ("syn+real", "simsiam"): {"cifar10": 90.88, "cifar100": 62.68, "stl10": 71.70},
    ("syn+real", "vicreg"): {"cifar10": 90.46, "cifar100": 65.22, "stl10": 75.05,
                             "imagenet100": 46.42, "imagenet": 47.32},
    ("syn+real", "squeeze and span"): {"cifar10": 92.54, "cifar100": 67.87, "stl10": 76.83,
                                       "imagenet100": 53.32, "imagenet": 47.80},
}

# Appendix Table 6: squeeze (synthetic only) by generator blocks -> {dataset: accuracy}.
APPENDIX_TABLE6 = {
    "b4-b8": {"cifar10": 87.05, "cifar100": 57.51, "stl10": 74.05},
    "b16-b32": {"cifar10": 87.08, "cifar100": 55.43, "stl10": 73.43},
    "b64-b128": {"stl10": 73.08},
    "all": {"cifar10": 87.67, "cifar100": 57.35, "stl10": 76.83},
}

# Appendix Table 7: GAN architecture (CIFAR10) -> (conditional, generation FID, squeeze accuracy).
APPENDIX_TABLE7 = {
    "stylegan2-ada": (False, 2.92, 87.67),
    "autogan": (False, 12.42, 76.28),
    "stylegan2-ada-cond": (True, 2.42, 88.90),
    "stylegan-xl": (True, 1.85, 84.97),
    "biggan-diffaugment-cr": (True, 8.49, 86.41),
}


# The paper's figure for the row labels of our other studies (studies/*.py), where a row has a
# counterpart in the paper (per data set: ``paper_column`` below). Generators: the zoo's main
# unconditional and conditional StyleGAN2-like generators stand for StyleGAN2-ADA (Table 7,
# squeeze); the zoo's DCGAN and the checkpoints along training have no counterpart there
# (Fig. 6 plots them as a curve).
PAPER_GENERATORS = {"stylegan-digits-m": APPENDIX_TABLE7["stylegan2-ada"][2],
                    "stylegan-digits-m-cond": APPENDIX_TABLE7["stylegan2-ada-cond"][2]}


# Table 5: squared MMD between synthetic and real representations, as printed (the scale
# factor in the column heads was lost in the text extraction; compare ratios, not values).
TABLE5 = {
    ("vicreg", "syn"): {"cifar10": 3.44, "cifar100": 5.89, "stl10": 5.39},
    ("vicreg", "syn+real"): {"cifar10": 3.74, "cifar100": 16.8, "stl10": 11.4},
    ("squeeze", "syn"): {"cifar10": 4.79, "cifar100": 1.24, "stl10": 9.82},
    ("squeeze and span", "syn+real"): {"cifar10": 0.45, "cifar100": 0.25, "stl10": 3.71},
}


# Appendix Table 5: pretrained on one dataset (Real & Syn), linear probe on another:
# method -> {(pretraining dataset, probed dataset): accuracy}.
APPENDIX_TABLE5 = {
    "simsiam": {("cifar10", "cifar100"): 41.32, ("cifar10", "stl10"): 68.70, ("cifar100", "cifar10"): 75.90,
                ("cifar100", "stl10"): 60.41, ("stl10", "cifar10"): 59.34, ("stl10", "cifar100"): 32.88},
    "vicreg": {("cifar10", "cifar100"): 54.19, ("cifar10", "stl10"): 80.56, ("cifar100", "cifar10"): 79.11,
               ("cifar100", "stl10"): 74.73, ("stl10", "cifar10"): 58.15, ("stl10", "cifar100"): 31.25},
    "squeeze and span": {("cifar10", "cifar100"): 58.93, ("cifar10", "stl10"): 82.22, ("cifar100", "cifar10"): 80.68,
                         ("cifar100", "stl10"): 73.85, ("stl10", "cifar10"): 64.76, ("stl10", "cifar100"): 37.48},
}
PAPER_CROSS_DATASET = {"syn+real-simsiam": APPENDIX_TABLE5["simsiam"], "syn+real-vicreg": APPENDIX_TABLE5["vicreg"],
                       "syn+real-squeeze-and-span": APPENDIX_TABLE5["squeeze and span"]}
PAPER_CROSS_DATASET_TARGETS = {"cifar10": ("cifar100", "stl10"), "cifar100": ("cifar10", "stl10"),
                               "stl10": ("cifar10", "cifar100")}
PAPER_DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "stl10": "STL-10"}

# Fig. 2 (a StyleGAN2-ADA on CIFAR-10, UMAP, generated images labelled by a classifier of ~95%
# test accuracy): the paper gives no number per panel, only its reading of each.
FIG2_READING = {"discriminator": "not class-clustered (2a)", "latent": "not class-clustered (2b)",
                "generator": "class-clustered (2c)"}

# Appendix Fig. 1 (CKA of pooled layer features): again a reading, not numbers. Its ResNet-18
# was trained by SimSiam on real images; ours is the student of the run compared.
FIG1_CKA_THRESHOLD = 0.85
FIG1_CKA_READING = {"generator": "most pairs < 0.80", "student": "many pairs > 0.85 (ResNet-18, SimSiam)",
                    "generator-student": "– (not shown)"}


# ---------------------------------------------------------------------------------------------
# a table's paper column for the data set a study ran on
# ---------------------------------------------------------------------------------------------
_SSL_ROWS = {**{f"{d}-{m}": (d, m) for d, m in TABLE2 if m in ("simsiam", "vicreg")},
             "syn-squeeze": ("syn", "squeeze"), "syn+real-squeeze-and-span": ("syn+real", "squeeze and span")}
_DOMAIN_GAP_ROWS = {"syn-vicreg": ("vicreg", "syn"), "syn+real-vicreg": ("vicreg", "syn+real"),
                    "syn-squeeze": ("squeeze", "syn"), "syn+real-squeeze-and-span": ("squeeze and span", "syn+real")}
_TABLE1_ROWS = {  # our row -> the key of TABLE1
    "discriminator-single": ("discriminator", "direct use (single feature)", "syn+real"),
    "discriminator-multi": ("discriminator", "direct use (multi-feature)", "syn+real"),
    "latent-encoding-syn": ("latent", "encoding", "syn"),
    "latent-encoding-syn+real": ("latent", "encoding", "syn+real"),
    **{f"{src}-{how}": (source, method, domain)
       for src, source in (("latent", "latent"), ("feature", "generator feature"))
       for how, method, domain in (("vanilla", "vanilla distillation (w/ aug)", "syn"), ("squeeze", "squeeze", "syn"),
                                   ("squeeze-and-span", "squeeze and span", "syn+real"))}}
PAPER_COLUMNS = {  # table -> {dataset: {our row: figure}}
    "ssl": {ds: {r: TABLE2[k][ds] for r, k in _SSL_ROWS.items() if ds in TABLE2[k]}
            for ds in ("cifar10", "cifar100", "stl10")},
    "domain_gap": {ds: {r: TABLE5[k][ds] for r, k in _DOMAIN_GAP_ROWS.items()} for ds in ("cifar10", "cifar100", "stl10")},
    "blocks": {ds: {r: v[ds] for r, v in APPENDIX_TABLE6.items() if ds in v} for ds in ("cifar10", "cifar100", "stl10")},
    "knowledge_source": {ds: {r: TABLE1[k][i] for r, k in _TABLE1_ROWS.items()}
                         for i, ds in enumerate(("cifar10", "cifar100"))},
}


def paper_column(table: str, dataset: str) -> tuple[dict[str, float], str]:
    """The paper's figures of ``table`` (a key of ``PAPER_COLUMNS``) for a study run on
    ``dataset``, and the name of the column they come from: the dataset's own column where the
    paper has one; CIFAR-10's for the embedded digits (the paper's main data set, named as
    such); none for a data set the paper has figures of under another name (``imagefolder``)."""
    columns = PAPER_COLUMNS[table]
    if dataset in columns:
        return columns[dataset], PAPER_DATASET_NAMES[dataset]
    if dataset in ("digits-m", "digits", ""):
        return columns["cifar10"], "CIFAR-10"
    return {}, f"no column for dataset {dataset!r}"
