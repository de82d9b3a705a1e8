"""What early stopping saves a search, and what it costs it: the loss-weights search run twice,
with and without early stopping, same trial budget, same searcher seed, same seeds.

    python benchmarks/search_early_stopping.py                    # the study as declared (preset smoke)
    python benchmarks/search_early_stopping.py --num-samples 8 --confirm-top 2
    python benchmarks/search_early_stopping.py --preset paper-cifar10 --set data_root=data --gpus-per-trial 0.5

Both arms run ``studies/loss_weights.py``'s study through ``run_study`` into their own folders
(a temporary one unless ``--storage``): ``off`` with its scheduler and stopper removed, ``on`` as
declared (ASHA on the per-epoch validation kNN, the collapse stopper). The searcher is the
study's (OptunaSearch, seed 0), so both arms start from the same proposals (TPE's random
start-up trials); after those its proposals follow the results, which early stopping changes.
Every trial runs on one CPU, two at a time.

Printed per arm: wall time of the search and of the confirmation, the search's compute in
full runs (each trial's ``progress``, the share of its steps it ran, summed: load-independent;
a trial that diverged before its first report counts as none), trials stopped early, and the best
confirmed candidate (ranked by its mean validation probe over the confirmation seeds) with its
test probe. The machine's load average is printed too: numbers taken while other work shares
the cores are inflated, and the two arms run one after the other.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import tempfile
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/search_early_stopping.py",
                                description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=None, help="base preset (default: the study's, smoke)")
    p.add_argument("--num-samples", type=int, default=None, help="search trials per arm (default: the study's)")
    p.add_argument("--confirm-top", type=int, default=None, help="candidates confirmed per arm (default: the study's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--storage", help="keep both arms' results here (default: a temporary folder)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--max-concurrent", type=int, default=2)
    args = p.parse_args(argv)

    import ray

    from analysis.tables import confirm_table
    from sqsp import cli
    from sqsp.tune import base_config, expand, preflight, run_study
    from studies.loss_weights import STUDY

    search = dataclasses.replace(STUDY.search, num_samples=args.num_samples or STUDY.search.num_samples,
                                 confirm_top=STUDY.search.confirm_top if args.confirm_top is None else args.confirm_top)
    study = dataclasses.replace(STUDY, preset=args.preset or STUDY.preset, search=search)
    arms = {"off": dataclasses.replace(study, scheduler=None, stopper=None), "on": study}

    def run() -> int:
        base = base_config(study, args.overrides)
        preflight([c for _, c in expand(study, base)])  # the zoo, once, untimed
        print(f"# search_early_stopping: preset {study.preset} {' '.join(args.overrides)}; {search.num_samples} "
              f"trials, best {search.confirm_top} on seeds {list(search.confirm_seeds)}; ray {ray.__version__}, "
              f"{os.cpu_count()} CPUs, load {_load()}")
        storage = args.storage or tempfile.mkdtemp(prefix="sqsp-es-")
        rows = []
        for name, arm in arms.items():
            t0 = time.perf_counter()
            trials = run_study(copy.deepcopy(arm), storage=os.path.join(storage, name), overrides=args.overrides,
                               cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                               max_concurrent=args.max_concurrent, verbose=0)
            rows.append(_summary(name, trials, time.perf_counter() - t0, confirm_table(trials, tuple(study.search_space)),
                                 study))
            print(f"# arm {name!r} done, load {_load()}; results in {os.path.join(storage, name, study.name)}")
        print(_markdown(rows, study))
        return 0

    return cli.run(p.prog, run)


def _summary(name, trials, wall, confirm, study) -> dict:
    import pandas as pd
    search = trials[trials["phase"] == "search"]
    progress = pd.to_numeric(search["progress"], errors="coerce").fillna(0)
    line = {"arm": name, "wall": wall, "search_s": trials.attrs.get("elapsed_s", {}).get("search", float("nan")),
            "confirm_s": trials.attrs.get("elapsed_s", {}).get("confirm", float("nan")),
            "runs": progress.sum(), "budget": len(search),
            "stopped": int((search["status"].isin(["stopped", "collapsed"]) & (progress < 1)).sum()),
            "statuses": search["status"].value_counts().to_dict(), "best": None}
    if confirm is not None and len(confirm):
        best = confirm.iloc[0]
        line["best"] = {"trial": best["confirms"], "values": {k: best[k] for k in study.search_space},
                        "val": (best[f"{study.metric}_mean"], best[f"{study.metric}_std"], best[f"{study.metric}_n"]),
                        "test": (best["probe_acc_mean"], best["probe_acc_std"], best["probe_acc_n"])}
    return line


def _markdown(rows, study) -> str:
    from analysis.tables import SYMBOLS, _mean_std
    head = ["early stopping", "search wall s", "confirmation wall s", "total wall s", "search compute, in full runs (of budget)",
            "stopped early", "best confirmed: " + ", ".join(f"{SYMBOLS.get(k, k)}" for k in study.search_space),
            "its val probe (selection)", "its test probe"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        b = r["best"]
        lines.append("| " + " | ".join([
            r["arm"], f"{r['search_s']:.0f}", f"{r['confirm_s']:.0f}", f"{r['wall']:.0f}",
            f"{r['runs']:.2f} ({r['budget']})", f"{r['stopped']} of {sum(r['statuses'].values())}",
            ", ".join(f"{v:.3g}" for v in b["values"].values()) if b else "–",
            _mean_std(*b["val"]) if b else "–", _mean_std(*b["test"]) if b else "–"]) + " |")
    if len(rows) == 2 and rows[1]["search_s"] > 0:
        lines.append("")
        lines.append(f"search: {rows[0]['search_s'] / rows[1]['search_s']:.2f}× less wall time and "
                     f"{rows[0]['runs'] / max(rows[1]['runs'], 1e-9):.2f}× less compute with early stopping; "
                     f"whole study (search + confirmation): {rows[0]['wall'] / rows[1]['wall']:.2f}× less wall time")
        lines.append("statuses of the search trials: " + "; ".join(f"{r['arm']}: {r['statuses']}" for r in rows))
    return "\n".join(lines)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
