"""What the main columns of the Parquet files mean and in which unit, written into each Parquet
field's metadata by results.py (so pandas, duckdb or pyarrow users read it beside the data)."""
from __future__ import annotations

PERCENT = "top-1 accuracy, %"
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    "probe_acc": (PERCENT, "linear probe on the test split, at the end"),
    "knn_acc": (PERCENT, "weighted kNN monitor on the test split, last evaluation"),
    "val_probe_acc": (PERCENT, "linear probe on the validation split (selection metric)"),
    "val_knn_acc": (PERCENT, "kNN on the validation split, last report (early-stopping signal)"),
    "init_probe_acc": (PERCENT, "linear probe of the untrained backbone (step 0)"),
    "init_knn_acc": (PERCENT, "kNN of the untrained backbone (step 0)"),
    "raw_probe_acc": (PERCENT, "linear probe on the raw pixels"),
    "raw_knn_acc": (PERCENT, "kNN on the raw pixels"),
    "mmd_syn_real": ("1", "MMD² of synthetic vs real backbone features, KID's kernel on pooled-standardised features"),
    "progress": ("fraction", "step / total steps at the last report (1: ran to its end)"),
    "wall_time_s": ("s", "Ray's time_total_s of the trial"),
    "time_total_s": ("s", "Ray's time since the trial started, at this report"),
    "img_per_s": ("images/s", "training throughput over the epoch"),
    "lr": ("1", "learning rate at the report"),
    "student_std": ("1", "mean per-dimension std of the student's output (Eq. 9's std)"),
    "teacher_std": ("1", "mean per-dimension std of the teacher's output"),
    "started_at": ("UTC", "the trial's start"),
    "ended_at": ("UTC", "the trial's last report"),
    "run_id": ("", "the study run that last wrote the trial (see the file's sqsp_runs)"),
    "checkpoint": ("path", "latest checkpoint, relative to the study folder"),
    "trial_path": ("path", "the trial's folder, relative to the study folder"),
    "stream_group": ("", "with --share-generator: the Ray trial that ran this row and its seed's others on one stream"),
    "generator_fid": ("1", "FID of the trial's generator (extractor in generator_fid_extractor)"),
}
"""Unit and meaning of the columns a reader most needs, written into each Parquet field's
metadata; ``probe_acc@<dataset>`` and ``knn_acc@<dataset>`` are accuracies in % too."""


def field_doc(name: str) -> tuple[str, str] | None:
    if name in COLUMN_DOCS:
        return COLUMN_DOCS[name]
    if name.startswith(("probe_acc@", "knn_acc@")):
        return PERCENT, f"{name.split('@')[0].replace('_acc', '')} on the test split of {name.split('@')[1]}"
    return None
