"""Switchyard benchmark: switchyard vs HAProxy vs nginx stream vs direct, on loopback.

Starts loopback backends (iperf3, nginx HTTP, sockperf, redis), then for every repetition and
workload starts each selected load balancer in front of the workload's backend (alternating the
load balancers so drift hits all alike), runs one bounded load through it and reads the load
balancer's CPU time (utime+stime of every process and thread, /proc/PID/stat) before and after.

Writes to --out (default: <repo>/bench-results/, git-ignored):
  results-STAMP.md     markdown tables of medians, with ratios to haproxy-1t and to direct
  samples-STAMP.json   every raw sample, plus the medians
  ratios-STAMP.png     chart of the ratios to haproxy-1t

Every process started here is stopped by its PID (on success, error, Ctrl-C and SIGTERM), every
load has its own duration flag plus a subprocess timeout, and temporary configs and logs live in a
mktemp directory removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import os
import resource
import shutil
import subprocess
import tempfile
import time

from benchlib.backends import start_backends
from benchlib.build import REPO, build_switchyard
from benchlib.installs import ensure_tools
from benchlib.lbconfigs import HAPROXY_MAXPIPES, LB, all_lbs, with_baseline
from benchlib.lbstart import STATUS_DATA, start_lb
from benchlib.log import log
from benchlib.processes import PROCS, free_ports, set_affinity, stop_all_on_exit
from benchlib.report import fmt, write_results
from benchlib.workloads import WORKLOADS, Ctx, Workload, run_workload


def select(items, wanted: str | None, attr_names, what: str):
    """Exact names, kinds/groups, or shell patterns (e.g. 'switchyard-*-1w')."""
    if not wanted:
        return list(items)
    keys = [k.strip() for k in wanted.split(",") if k.strip()]

    def hit(it, k):
        return any(getattr(it, a) == k for a in attr_names) or fnmatch.fnmatchcase(it.name, k)

    unknown = [k for k in keys if not any(hit(it, k) for it in items)]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted({getattr(it, a) for it in items for a in attr_names}))}")
    return [it for it in items if any(hit(it, k) for k in keys)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    n_default = os.cpu_count() or 2
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="repetitions per (workload, LB); median reported")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load (default 10)")
    ap.add_argument("--only", help="comma list of workloads or groups: " + ", ".join(
        sorted({w.group for w in WORKLOADS} | {w.name for w in WORKLOADS})))
    ap.add_argument("--lbs", help="comma list of LB names or kinds (direct, haproxy, nginx, switchyard) or names "
                                  "like haproxy-1t, switchyard-copy-2w")
    ap.add_argument("--switchyard", metavar="BIN", help="switchyard binary (skips swift build -c release)")
    ap.add_argument("--baseline", metavar="BIN",
                    help="another switchyard binary to compare: each switchyard LB gets a twin running BIN with the "
                         "same configuration, named switchyard-before-... (switchyard-before-auto-1w)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench-results"), help="output directory")
    ap.add_argument("--workers", type=int, default=n_default, help="N for the multi-thread runs (default: cores)")
    ap.add_argument("--conns", type=int, default=10000, help="idle connections for the scale workload")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get/pip")
    return ap.parse_args(argv)


def executable(path: str) -> str:
    """The absolute path of a switchyard binary given on the command line; ends the run if it cannot be run."""
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise SystemExit(f"switchyard binary not executable: {path}")
    return path


def run_all(args: argparse.Namespace, workloads: list[Workload], lbs: list[LB], conns: int, maxconn: int,
            hard_nofile: int, switchyard_bin: str | None, tmp: str, samples: list[dict]) -> None:
    """Every repetition of every workload through every LB, appending one sample each to `samples`.
    A failed sample is recorded and the run goes on; a backend that exits ends it."""
    pinned_possible = (os.cpu_count() or 1) >= 2
    backends = start_backends({w.backend for w in workloads}, tmp, hard_nofile)
    lb_ports = iter(free_ports(args.runs * len(workloads) * len(lbs) + 10, 23000))
    total = args.runs * len(workloads) * len(lbs)
    if any(w.group == "scale" for w in workloads) and any(lb.kind == "direct" for lb in lbs):
        total -= args.runs
    done = 0
    for rep in range(args.runs):
        for w in workloads:
            # alternate the LBs; rotate the starting one each repetition so none is always first
            order = lbs[rep % len(lbs):] + lbs[:rep % len(lbs)]
            for lb in order:
                done += 1
                if w.group == "scale" and lb.kind == "direct":
                    continue  # nothing between client and backend to measure
                pinned = lb.pinned and pinned_possible
                set_affinity(backends.pids(), {0} if pinned else set(range(os.cpu_count() or 1)))
                ctx = Ctx(args.duration, {0} if pinned else None, conns, backends.ports[w.backend])
                sample = {"rep": rep, "workload": w.name, "lb": lb.name, "pinned": pinned,
                          "time": time.time()}
                run = None
                try:
                    run = start_lb(lb, pinned, backends.pool(w.backend, w.pool), next(lb_ports), tmp, maxconn,
                                   hard_nofile, switchyard_bin)
                    polls = run.page.requests_to(STATUS_DATA) if run.page else 0
                    sample["metrics"] = run_workload(w, ctx, run)
                    m = sample["metrics"]
                    if run.page:
                        # proof that the browser kept the page live through the whole load
                        m["page_requests"] = run.page.requests_to(STATUS_DATA) - polls
                    log(f"[{done}/{total}] rep {rep} {w.name:10} {lb.name:22} " + " ".join(
                        f"{k}={fmt(m[k])}" for k in [*w.columns, "page_requests"] if k in m))
                except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
                    sample["error"] = str(exc)
                    log(f"[{done}/{total}] rep {rep} {w.name:10} {lb.name:22} FAILED: {exc}")
                finally:
                    if run is not None:
                        run.stop()
                samples.append(sample)
                for name, p in backends.procs.items():
                    if p.poll() is not None:
                        raise RuntimeError(f"backend {name} exited ({p.returncode}); see its log")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = select(WORKLOADS, args.only, ("name", "group"), "workload")
    lbs = select(all_lbs(args.workers), args.lbs, ("name", "kind"), "load balancer")
    if args.runs < 1 or args.duration <= 0:
        raise SystemExit("--runs and --duration must be positive")
    baseline_bin = None
    if args.baseline:
        baseline_bin = executable(args.baseline)
        lbs = with_baseline(lbs, baseline_bin)
        if not any(lb.binary for lb in lbs):
            raise SystemExit("--baseline compares switchyard LBs, and --lbs selects none")
    if (os.cpu_count() or 1) < 2:
        log("fewer than 2 cores: pinned runs run unpinned")

    stop_all_on_exit(PROCS)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every LB and backend
    # a single-process LB holds two descriptors per proxied connection, plus listeners, logs and
    # (HAProxy with splice) HAPROXY_MAXPIPES pipes of two descriptors each
    conns = min(args.conns, (hard - 2 * HAPROXY_MAXPIPES - 200) // 2)
    if conns < args.conns and any(w.group == "scale" for w in workloads):
        log(f"RLIMIT_NOFILE hard limit {hard}: idle-conns uses {conns} connections, not {args.conns}")
    maxconn = conns + 50

    ensure_tools(args.no_install, need_matplotlib=True, need_browser=any("browser" in lb.observe for lb in lbs))
    switchyard_bin = args.switchyard
    if any(lb.kind == "switchyard" and not lb.binary for lb in lbs):
        switchyard_bin = executable(switchyard_bin) if switchyard_bin else executable(build_switchyard())

    os.makedirs(args.out, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    meta = {"stamp": stamp, "runs": args.runs, "duration": args.duration, "n": args.workers, "conns": conns,
            "lbs": [lb.name for lb in lbs], "workloads": [w.name for w in workloads],
            "switchyard": switchyard_bin, "kernel": os.uname().release, "cores": os.cpu_count()}
    if baseline_bin:
        meta["baseline"] = baseline_bin
    samples: list[dict] = []
    tmp = tempfile.mkdtemp(prefix="switchyard-bench-")
    interrupted = False
    try:
        run_all(args, workloads, lbs, conns, maxconn, hard, switchyard_bin, tmp, samples)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping everything, writing partial results")
    finally:
        PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    write_results(args.out, stamp, meta, samples, workloads, lbs)
    return 130 if interrupted else 0
