"""Studies as Ray Tune sweeps over ``sqsp.train.train``: the only package of sqsp that imports Ray.

A study is declared once as a ``Study`` (name, base preset, a grid of fields or a list of
named rows or a ``Search``, seeds, metric and mode, optional early stopping) in a short file
under ``studies/`` that ends with ``study_main(STUDY)``; ``run_study`` does the rest. Where
each part lives, as a newcomer looks for it:

==================  ==========================================================================
``study.py``        ``Study``: the declaration, its checks, its expansion into validated trial
                    configs and Ray Tune's ``param_space``
``search.py``       ``Search`` (searcher, space, budget, confirmation), ``CollapseStopper``,
                    ``FinalMetricSearcher``, the checks of what a search selects on
``trainable.py``    ``sqsp_trial``: the function trainable (``tune.report``, ``tune.get_checkpoint``)
``resume_point.py`` where a resumed trial continues: its furthest complete checkpoint in storage
``preflight.py``    what would fail every trial, refused before it starts: data, generators,
                    devices, resources, a cluster's address and paths; rows this machine skips
``checkpoint_rows.py``  a folder of generator checkpoints as rows, with their FIDs
``folder.py``       the study folder: its lock, SIGTERM as Ctrl-C, ``study.json`` and resume, the
                    kept copy of Tune's state
``watch.py``        what the driver watches during a fit: the storage filling up (a reserve, a
                    stop, one line), the copy of Tune's state
``console.py``      the line per trial, trial labels, Ray Tune's logger callbacks
``experiment.py``   one Tune experiment: the Tuner set up (or restored) and its results written
``confirm.py``      the confirmation of a search's best trials on other seeds
``ray_session.py``  ``init_ray``: a private Ray on 127.0.0.1 with token auth, or a cluster joined
``run.py``          ``run_study``: the main path, from the declaration to the Parquet files
``study_file.py``   a study as a YAML file (``--config``): read, checked, written back as ``study.yaml``
``cli.py``          ``study_main`` (the command line of every study file) and ``--dry-run``
==================  ==========================================================================

Searched studies (a ``Search``, e.g. studies/loss_weights.py) run ``num_samples`` trials on one
seed, selected on the study's ``metric`` (``val_probe_acc``: a validation split, never the
test split). A ``scheduler`` may act on a signal of its own reported every epoch (ASHA on
``val_knn_acc`` against ``progress``, the share of the run done, so its rungs mean the same on
every preset) and a ``stopper`` ends trials that stay collapsed (``CollapseStopper``: status
``collapsed``, never ``failed``). The best ``confirm_top`` trials are then re-run on
``confirm_seeds``. A searched study resumes its search with the restored searcher (Tune saves
the OptunaSearch with the experiment state, so it neither forgets a trial nor proposes one
twice), then its confirmation. ASHA's rungs are not saved by Tune: after a resume they fill
again from the results that follow, so a trial may then run further than it would have.
"""
from .checkpoint_rows import checkpoint_info
from .cli import add_search_flags, apply_search_flags, dry_run, study_main
from .confirm import CONFIRM_DIR, CONFIRM_FILE, run_confirmation, select_candidates
from .console import LOGGERS, TensorBoardLogger, TrialLines, logger_callbacks, parse_loggers, trial_label
from .folder import STATE_COPY_DIR, STUDY_FILE, storage_root, study_dir, study_lock
from .preflight import (check_devices, check_paths_on_cluster, check_reachable, check_resources, prepare_generators,
                        preflight, skipped_rows, trial_paths)
from .ray_session import init_ray
from .run import run_study
from .search import CollapseStopper, FinalMetricSearcher, Search, check_search
from .study_file import read_study, study_document, study_from_document
from .study import (FIELDS, RowValue, Study, base_config, check_declaration, expand, fixed_spec, param_space,
                    row_domains, study_metadata, trial_config, varying)
from .trainable import sqsp_trial

__all__ = [
    "CONFIRM_DIR", "CONFIRM_FILE", "FIELDS", "LOGGERS", "STATE_COPY_DIR", "STUDY_FILE", "CollapseStopper",
    "FinalMetricSearcher",
    "RowValue", "Search", "Study", "TensorBoardLogger", "TrialLines", "add_search_flags", "apply_search_flags",
    "base_config", "check_declaration", "check_devices", "check_paths_on_cluster", "check_reachable",
    "check_resources", "check_search", "checkpoint_info", "dry_run", "expand", "fixed_spec", "init_ray",
    "logger_callbacks",
    "param_space", "parse_loggers", "preflight", "prepare_generators", "read_study", "row_domains", "run_confirmation",
    "run_study", "select_candidates", "skipped_rows", "sqsp_trial", "storage_root", "study_dir", "study_lock",
    "study_document", "study_from_document", "study_main", "study_metadata", "trial_config", "trial_label",
    "trial_paths", "varying",
]
