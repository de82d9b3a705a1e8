"""How long ``python -m sqsp.zoo build`` takes, and where the time goes.

Builds the zoo from scratch into a temporary directory (the real zoo is not touched) and
prints wall time, CPU time of the build and its worker processes, the machine's load
average before and after (these VMs are shared, and wall time depends on it), and each
entry's FID and quality measures (``sqsp.quality``). It always trains (``retrain``): the
package ships the trained zoo, which a plain build would copy.

    python benchmarks/zoo_build.py                 # the real build (several minutes)
    python benchmarks/zoo_build.py --steps 20      # a quick smoke of the pipeline
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from sqsp import zoo, zoo_build


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=None, help="override every run's length")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), time.process_time()
        # retrain: the package ships a trained zoo that a build would otherwise copy
        m = zoo.build(d, steps=args.steps, workers=args.workers, threads=args.threads, progress=False, retrain=True)
        wall, cpu_self = time.perf_counter() - t0, time.process_time() - c0
    cpu_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    print(f"wall {wall:.1f} s   cpu {cpu_self + cpu_children:.1f} s (build {cpu_self:.1f}, workers {cpu_children:.1f})")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    ref = m["references"]["real-test"]
    print(f"reference real test vs train: FID {ref['value']:.2f} [{ref['extractor']}]")
    for name, e in sorted(m["entries"].items(), key=lambda kv: (kv[1]["run"], kv[1]["step"], kv[0])):
        print(f"  {name:<28} step {e['step']:>5}  FID {e['fid']['value']:7.2f}  (n={e['fid']['n_samples']})  "
              f"{zoo_build._QUALITY_HEADER}: {zoo_build._quality_cells(e)}  misses: {', '.join(e['misses']) or 'none'}")


if __name__ == "__main__":
    main()
