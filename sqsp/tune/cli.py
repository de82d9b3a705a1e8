"""The command line shared by every ``studies/<name>.py`` and ``python -m sqsp.tune`` (``sqsp-study``):
flags, ``--config``, ``--grid``, ``--dry-run``, the table at the end.

Exit status: 0 when every trial ended (completed, collapsed, diverged or stopped by a
scheduler); 1 when a trial failed or the study was interrupted (``--resume`` continues it);
2 for a user error, found before any trial ran (one line, see sqsp/cli.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from .. import cli, results
from ..checkpoints import FID_SAMPLES
from ..config import ConfigError, TrainConfig, add_run_arguments, parse_generator, parse_seeds
from .console import LOGGERS, parse_loggers
from .folder import study_dir
from .run import run_study
from .search import PRUNERS, SAMPLERS, domain_text, optuna_searcher, pruner, pruner_name, sampler_spec
from .groups import plan_groups
from .study import Study, resolve
from .study_file import command_line_study, is_study_key


def study_main(study: Study | None = None, argv: list[str] | None = None) -> int:
    """The command line of a study file: parse flags, run the study, print its table.

    ``study`` is the study of the file that runs it (None for ``python -m sqsp.tune``):
    ``--config FILE`` runs a study file's instead, ``--set <key>.<key>=…`` sets the study's
    own keys (``rows.e.sim_weight=10``, ``seeds=[0,1]``: sqsp/tune/study_file.py) and
    ``--grid FIELD=V1,V2,…`` makes its grid.

    Exit status: 0 when every trial ended (completed, collapsed, diverged or stopped by a
    scheduler); 1 when a trial failed or the study was interrupted (``--resume`` continues
    it); 2 for a user error, found before any trial ran (one line, see sqsp/cli.py)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = f"python studies/{study.name}.py" if study is not None else cli.prog("python -m sqsp.tune")
    return cli.run(prog, lambda: _study_main(study, argv, prog))


def _named_study(study: Study | None, argv: list[str]) -> Study:
    """The study the command line names (``--config``, dotted ``--set``, ``--grid``), read before
    the flags whose defaults come from it."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    pre.add_argument("--grid", action="append", default=[])
    pre.add_argument("--set", dest="overrides", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    dotted = [o for o in known.overrides if is_study_key(o.partition("=")[0].strip())]
    named = command_line_study(study, known.config, known.grid, dotted)
    if named is None:
        if {"-h", "--help"} & set(argv):
            return Study(name="sweep")
        raise ConfigError("give --config FILE (a study file) or --grid FIELD=V1,V2,... (a sweep of the preset, "
                          "e.g. --grid sim_weight=1,5,25)")
    return named


def _study_main(study: Study | None, argv: list[str], prog: str) -> int:
    study = _named_study(study, argv)
    p = argparse.ArgumentParser(prog=prog,
                                description=study.description or f"Run the {study.name} study with Ray Tune.")
    p.add_argument("--config", metavar="FILE",
                   help="run the study a YAML study file declares (its format: sqsp/tune/study_file.py; a finished "
                        "study's <storage>/<study>/study.yaml re-runs its trials); --set with a dotted key sets the "
                        "study's own keys, e.g. --set rows.e.sim_weight=10, --set seeds=[0,1]")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                   help="sweep a config field (repeatable: the Cartesian product, on the study's seeds), e.g. "
                        "--grid sim_weight=1,5,25; replaces the study's grid")
    add_run_arguments(p, seeds=tuple(study.seeds), default_preset=study.preset, holds="<study>/", uri=True)
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or 'ray://host:10001' "
                                     "(default: a private local Ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU, e.g. 0.25")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study in --storage")
    p.add_argument("--max-failures", type=int, default=1,
                   help="retries of a trial that crashes (default 1; a config or file error is not retried; "
                        "a trial lost with its node is resumed once more whatever this says)")
    p.add_argument("--max-concurrent", type=int, default=None, help="cap on trials running at once")
    p.add_argument("--dry-run", action="store_true",
                   help="print the trials the study would run (row, seed, the fields that vary) and exit; "
                        "starts no Ray, trains nothing")
    p.add_argument("--verbose", action="store_true",
                   help="Ray's own trial tables and the trials' console output (default: a line per finished trial)")
    p.add_argument("--status-every", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between the status lines of the running trials on stderr (default 30)")
    p.add_argument("--loggers", default="tensorboard",
                   help=f"Ray Tune logger callbacks, comma separated: {', '.join(LOGGERS)} (MLflow and W&B when "
                        "installed), or none (default tensorboard; view with tensorboard --logdir <storage>/<study>)")
    default_share = {None: "auto", True: "on", False: "off"}[study.share_generator]
    p.add_argument("--share-generator", nargs="?", const="on", default=default_share, metavar="on|off|auto",
                   help="run the rows of a seed that read the same generator stream as one Ray trial, each synthetic "
                        "batch drawn once (each row still its own record); auto: where that is exact (default "
                        f"{default_share})")
    if study.search is not None:
        add_search_flags(p, study)
    if study.checkpoint_rows:
        p.add_argument("--generators", metavar="GLOB",
                       help="generator checkpoints to compare, one row each, e.g. 'runs/00000/network-snapshot-*.pkl' "
                            "(quote it); each one's FID is recorded with its trials")
        p.add_argument("--fid-samples", type=int, default=FID_SAMPLES,
                       help=f"generated images per checkpoint FID (default {FID_SAMPLES})")
        p.add_argument("--manifest", action="append", default=[],
                       help="a manifest recording checkpoints' FIDs (sqsp/zoo.py format; repeatable): those are not "
                            "recomputed")
    args = p.parse_args(argv)
    overrides = [o for o in args.overrides if not is_study_key(o.partition("=")[0].strip())]
    overrides += [f"data_root={args.data_root}"] if args.data_root else []

    def run() -> int:
        seeds = study.seeds if args.seeds is None else parse_seeds(args.seeds)
        chosen = dataclasses.replace(study, preset=args.preset, seeds=seeds,
                                     share_generator=parse_share(args.share_generator))
        if chosen.search is not None:
            chosen = apply_search_flags(chosen, args)
        loggers = parse_loggers(args.loggers)
        if not args.status_every > 0:
            raise ConfigError(f"--status-every {args.status_every:g}: must be a number of seconds > 0")
        if args.dry_run:
            print(dry_run(chosen, overrides))
            return 0
        trials = run_study(chosen, address=args.address, storage=args.storage, resume=args.resume,
                           cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                           max_failures=args.max_failures, overrides=overrides, max_concurrent=args.max_concurrent,
                           verbose=2 if args.verbose else 0, loggers=loggers, status_every=args.status_every,
                           **_checkpoint_flags(chosen, args))
        if study.table is not None:
            print(study.table(trials))
        if study.figures is not None and not trials.attrs.get("interrupted"):
            _draw(study, trials, study_dir(study, args.storage))
        reasons = results.failure_summary(trials)
        if reasons:
            print("\nTrials without a result:\n" + "\n".join(f"- {r}" for r in reasons))
        failed = int((trials["status"] == "failed").sum())
        if failed:
            print(f"[sqsp] {failed} of {len(trials)} trials failed; the reasons are printed under the table",
                  file=sys.stderr)
        return 1 if failed or trials.attrs.get("interrupted") else 0

    return run()


def parse_share(text: str) -> bool | None:
    """``--share-generator on|off|auto`` as ``Study.share_generator`` (True, False, None)."""
    choices = {"on": True, "off": False, "auto": None}
    if text not in choices:
        raise ConfigError(f"--share-generator {text!r}; allowed: {', '.join(choices)} (bare --share-generator: on)")
    return choices[text]


def _checkpoint_flags(study: Study, args: argparse.Namespace) -> dict[str, Any]:
    """``--generators``, ``--fid-samples``, ``--manifest`` as run_study takes them, checked."""
    if not study.checkpoint_rows:
        return {}
    if args.fid_samples < 2:
        raise ConfigError(f"--fid-samples {args.fid_samples}: a FID needs at least 2 images")
    for m in args.manifest:
        if not os.path.isfile(m):
            raise ConfigError(f"--manifest {m!r} does not exist (relative to {os.getcwd()})")
    return dict(generators=args.generators, fid_samples=args.fid_samples,
                manifests=[os.path.abspath(m) for m in args.manifest] or None)


def dry_run(study: Study, overrides: dict[str, Any] | list[str] | None = None) -> str:
    """The trials ``run_study`` would run, one line each: row, seed and the fields that vary
    (``param_space``'s), every config validated, without Ray or data. A generator that is here
    already (in the zoo, or untrained ``random:``) is checked for the blocks the configs read,
    as the run would check it; one that is not is checked when the study runs."""
    _, _, trials = resolve(study, overrides)
    _check_generators_here([cfg for _, cfg in trials])
    plan = plan_groups(study, trials, study.share_generator)  # refuses a --share-generator on that cannot be exact
    head = f"study {study.name!r} on preset {study.preset!r}"
    search = study.search
    if search is not None:
        space = ", ".join(f"{k} {domain_text(v)}" for k, v in search.space.items())
        lines = [f"{head}: {search.num_samples} trials on seed {study.seeds[0]}, proposed by "
                 f"{type(search.searcher).__name__} from {space}"]
        if search.confirm_top:
            lines.append(f"then the best {search.confirm_top} by {study.metric} re-run on seeds "
                         f"{[int(s) for s in search.confirm_seeds]}: {search.confirm_trials} trials")
        return "\n".join(lines)
    shown = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed" and
             len({json.dumps(getattr(c, f.name)) for _, c in trials}) > 1]
    lines = [f"{head}: {len(trials)} trials" + (f" (varying {', '.join(shown)})" if shown else "")]
    width = max((len(str(row)) for row, _ in trials), default=0)
    for row, cfg in trials:
        values = "  ".join(f"{k}={getattr(cfg, k)}" for k in shown)
        lines.append(f"  {'' if row is None else str(row):<{width}}  seed {cfg.seed:<3} {values}".rstrip())
    if plan:  # the plan run_study makes (it leaves out the rows this machine cannot run, if any)
        first = [label.rsplit(" seed ", 1)[0] for label, g in plan.items() if g["seed"] == study.trial_seeds[0]]
        lines.append(f"sharing the generator stream (--share-generator): {len(plan)} Ray trials, per seed: "
                     + " | ".join(first))
    return "\n".join(lines)


def _check_generators_here(configs: list[TrainConfig]) -> None:
    from .. import zoo
    here = set(zoo.entries())
    for spec, blocks in sorted({(c.generator, c.generator_blocks) for c in configs
                                if c.draws_synthetic}):
        if spec in here or parse_generator(spec).kind == "random":
            zoo.check_generator(spec, blocks=blocks)


def add_search_flags(p: argparse.ArgumentParser, study: Study) -> None:
    """A searched study's own flags: its budget, its confirmation, early stopping on or off."""
    search, stops = study.search, study.early_stopping
    p.add_argument("--num-samples", type=int, default=search.num_samples,
                   help=f"trials the searcher proposes (default {search.num_samples})")
    p.add_argument("--confirm-top", type=int, default=search.confirm_top,
                   help=f"re-run the K best search trials on the confirm seeds (default {search.confirm_top}; 0: none)")
    p.add_argument("--confirm-seeds", default=",".join(str(s) for s in search.confirm_seeds),
                   help="seeds of the confirmation, as --seeds takes them (default "
                        f"{','.join(str(s) for s in search.confirm_seeds)}; never the search's seed)")
    p.add_argument("--early-stopping", choices=("on", "off"), default="on" if stops else "off",
                   help=f"stop trials early ({' and '.join(stops) or 'the study declares no scheduler or stopper'}; "
                        f"default {'on' if stops else 'off'})")
    declared = sampler_spec(search.searcher)
    if "sampler" in declared:  # an Optuna search
        p.add_argument("--sampler", choices=sorted(SAMPLERS), default=None,
                       help=f"the Optuna sampler that proposes the trials (default {declared['sampler']})")
        p.add_argument("--sampler-seed", type=int, default=None,
                       help=f"the sampler's seed (default {declared['seed']})")
    p.add_argument("--pruner", choices=PRUNERS, default=None,
                   help="how trials are stopped early: ASHA, the median stopping rule, or none, on the study's "
                        f"per-epoch metric (default {pruner_name(study.scheduler)})")


def apply_search_flags(study: Study, args: argparse.Namespace) -> Study:
    """The searched study as the command line asks: budget, confirmation, early stopping."""
    if args.early_stopping == "on" and not study.early_stopping:
        raise ConfigError(f"--early-stopping on: study {study.name!r} declares no scheduler or stopper")
    if args.num_samples < 1:
        raise ConfigError(f"--num-samples {args.num_samples}: must be >= 1")
    off = args.early_stopping == "off"
    search = study.search
    seeds = parse_seeds(args.confirm_seeds, "--confirm-seeds") if args.confirm_top else search.confirm_seeds
    searcher = search.searcher
    if getattr(args, "sampler", None) is not None or getattr(args, "sampler_seed", None) is not None:
        declared = sampler_spec(search.searcher)
        searcher = optuna_searcher(args.sampler or declared["sampler"],
                                   declared["seed"] if args.sampler_seed is None else args.sampler_seed)
    scheduler = study.scheduler
    if args.pruner is not None:
        if off and args.pruner != "none":
            raise ConfigError(f"--pruner {args.pruner} with --early-stopping off: choose one")
        scheduler = pruner(args.pruner, study.scheduler)
    search = dataclasses.replace(search, searcher=searcher, num_samples=args.num_samples,
                                 confirm_top=args.confirm_top, confirm_seeds=seeds)
    return dataclasses.replace(study, search=search, scheduler=None if off else scheduler,
                               stopper=None if off else study.stopper)


def _draw(study: Study, trials, folder: str) -> None:
    """A study's figures, into its folder (a local one: figures are for reading here)."""
    if "://" in folder:
        print(f"[sqsp] note: figures are drawn into local folders; run python analysis/plots.py on a copy of "
              f"{folder}", file=sys.stderr)
        return
    try:
        for path in study.figures(trials, folder):
            print(f"[sqsp] wrote {path}", file=sys.stderr)
    except ValueError as e:  # too few finished trials for a figure: the table says why
        print(f"[sqsp] no figures: {e}", file=sys.stderr)
