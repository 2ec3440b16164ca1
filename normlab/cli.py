"""The ``normlab`` command line.

    normlab list
    normlab run EXPERIMENT [--FIELD VALUE ...] [--quick] [--jobs N] [--out DIR] [--yes]
    normlab reproduce [--quick] [--jobs N] [--out DIR] [--only NAME,...] [--resume RUN_DIR]
                      [--scheduler ADDRESS] [--yes]
    normlab report RUN_DIR
    normlab gradcheck [--seed N] [--layers-only] [--json PATH]
    normlab crosscheck [--steps N] [--seed N] [--tolerance T] [--json PATH]
    normlab data info [NAME ...] [--dir DIR]
    normlab data fetch NAME [--dir DIR] [--mirror URL ...]

Exit codes: 0 success, 1 a check failed, a run failed or a user error (one
line on stderr, no traceback), 2 bad usage (the usage and the reason), 130
interrupted (Ctrl-C), 143 terminated (SIGTERM, handled like Ctrl-C: workers
stopped, finished runs kept, the run directory's lock released).

BLAS thread variables are pinned to 1 in :func:`main`, before anything here
imports NumPy (module level imports only the standard library): matrix
products round differently with different thread counts, and the same run
must give the same bits whether it trains in this process or in a worker.
See :mod:`normlab._threads`.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import signal
import sys

from . import __version__

__all__ = ["main"]


def _cmd_gradcheck(args) -> int:
    from ._io import atomic_write
    from .engines.gradchecks import format_table, run_checks

    print("normlab gradient checks: analytic gradients vs float64 finite differences (central; five-point on smooth layers), "
          "random upstream gradients, course test sizes", flush=True)
    rows = run_checks(seed=args.seed, nets=not args.layers_only)
    print(format_table(rows))
    if args.json:
        payload = json.dumps({"seed": args.seed, "rows": [r.as_dict() for r in rows]}, indent=2)
        atomic_write(args.json, lambda f: f.write(payload.encode()))
    return 0 if all(r.ok for r in rows) else 1


def _cmd_data_info(args) -> int:
    from .data.info import all_info, format_info

    infos = all_info(args.dir, args.names or None)
    print(format_info(infos))
    return 1 if any(i.error for i in infos) else 0   # a corrupt copy; missing ones are not errors


def _cmd_data_fetch(args) -> int:
    from .data.download import fetch
    from .data.locate import find
    from .data.registry import get

    ds = get(args.name)
    found = find(ds, args.dir)
    if found is not None:
        print(f"{ds.name} is already in {found.folder}; `normlab data info {ds.name}` verifies it")
        return 0
    folder = fetch(ds, data_dir=args.dir, mirrors=args.mirror or None)
    print(f"{ds.name}: downloaded and MD5-verified into {folder}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds exactly like Ctrl-C:
    workers stopped, finished runs kept, the lock released, exit code 143."""


def _raise_terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)     # a second TERM must not cut the cleanup short
    raise Terminated()


def _interrupted(exc: KeyboardInterrupt, out) -> int:
    """The one line of an interrupted run/reproduce and its exit code (128 + the signal).
    The resume hint only when the directory holds a run to resume."""
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    resumable = out is not None and os.path.isfile(os.path.join(os.path.expanduser(os.fspath(out)), "config.json"))
    print(f"normlab: {what}; " + (f"finished runs are kept: `normlab reproduce --resume {out}` continues"
                                  if resumable else "nothing was written"), file=sys.stderr)
    return 143 if isinstance(exc, Terminated) else 130


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


class _Reporter:
    """Turns reproduce()'s progress events into a bar (TTY) or plain lines on stderr."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None

    def __call__(self, event, **info):
        from .lab.budget import describe
        from .lab.progress import Progress, format_seconds
        if event == "stale":
            self._line(f"normlab: removed {info['path']}, a temporary file left by a killed writer")
        elif event == "sweep":
            for name in info.get("restored") or ():
                self._line(f"normlab: restored {name} into the store from its history file")
            for name in info.get("damaged") or ():
                self._line(f"normlab: the store's row of {name} is damaged; training it again")
            done = info["total"] - info["todo"]
            where = (f"on the Dask scheduler at {info['scheduler']}" if info.get("scheduler") else
                     f"{info['jobs']} worker process{'es' if info['jobs'] != 1 else ''}")
            self._line(f"normlab: {info['total']} training runs"
                       + (f" ({done} already in the store)" if done else "")
                       + (f"{' ' if info.get('scheduler') else ', '}{where}" if info["todo"] else ", nothing to train")
                       + (f" ({describe(info['estimate'])})" if info["todo"] and info.get("estimate") else ""))
            if info["todo"]:
                self.bar = Progress(info["total"], "training", stream=self.stream)
                self.bar.done = done
        elif event == "run":
            if self.bar is None or self.bar.total != info["total"]:
                self._close()
                self.bar = Progress(info["total"], "training", stream=self.stream)
            spec, res = info["spec"], info["result"]
            status = getattr(res, "status", "")
            secs = getattr(res, "seconds", None)
            self.bar.update(info["done"], f"{spec.experiment} {spec.name} {status}"
                            + (f" {format_seconds(secs)}" if secs is not None else ""))
        elif event == "analyzed":
            self._close()
            self._line(f"normlab: analyzed {info['name']} ({info['index']}/{info['total']}) "
                       f"in {format_seconds(info['seconds'])}")
        elif event == "report":
            self._close()

    def _line(self, text):
        self._close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _finish_outcome(outcome) -> int:
    from .lab.progress import format_seconds
    md, page = outcome.report
    print(f"report: {page}\n        {md}")
    print(f"{outcome.total_runs} training runs, {outcome.executed} trained now, "
          f"{format_seconds(outcome.seconds)}; metrics in {outcome.out_dir / 'metrics.json'}")
    for s in outcome.sections:
        first = (s.answer or "").split(". ")[0].rstrip(".")
        print(f"  {s.name}: {first[:200]}{'...' if len(first) > 200 else '.'}")
    for p in outcome.problems:
        print(f"normlab: problem: {p}", file=sys.stderr)
    if outcome.problems:
        print(f"normlab: error: {len(outcome.problems)} problem(s); the report lists them", file=sys.stderr)
        return 1
    return 0


def _cmd_list(args) -> int:
    from .lab.plan import recipes, suite_names
    table = {n: recipes()[n] for n in suite_names(args.suite)}
    width = max((len(n) for n in table), default=0)
    print(f"{'experiment':<{width}}  {'runs':>4}  {'quick':>5}  title")
    for name, mod in table.items():
        cfg = mod.Config()
        full, quick = len(mod.runs(cfg)), len(mod.runs(mod.quick(cfg)))
        print(f"{name:<{width}}  {full:>4}  {quick:>5}  {mod.TITLE}")
    print("\n`normlab run EXPERIMENT --help` lists an experiment's options; "
          f"`normlab reproduce --suite {args.suite}` runs them all and writes the report.")
    return 0


def _experiment_parser(name, mod) -> argparse.ArgumentParser:
    """``normlab run NAME``'s options: one per Config field, typed like the field."""
    from .lab.report import format_value
    from .lab.configs import metavar
    p = argparse.ArgumentParser(prog=f"normlab run {name}", allow_abbrev=False,
                                description=f"{mod.TITLE}. {mod.QUESTION}",
                                epilog="Sequences are given comma-separated (--hidden-dims 100,100); "
                                       "also: --quick, --jobs N, --out DIR, --scheduler ADDRESS, --yes.")
    for f in dataclasses.fields(mod.Config):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        flag = "--" + f.name.replace("_", "-")
        flags = [flag] + (["--" + f.name] if "_" in f.name else [])
        what = ("numpy, torch (the same nets in torch.nn; normlab[torch]), both side by side, or auto "
                "(both when PyTorch is installed, else numpy); "
                if f.name == "engine" else "")
        p.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar=metavar(mod.Config, f.name),
                       help=f"{what}default: {format_value(default)}")
    return p


def _run_overrides(parser, run_parser, args, extras) -> dict:
    from .lab.configs import coerce_overrides
    from .lab.plan import recipes
    table = recipes()
    if args.experiment is None:
        if args.help:
            run_parser.print_help()
            parser.exit(0)
        run_parser.error("the following arguments are required: EXPERIMENT")
    if args.experiment not in table:
        run_parser.error(f"unknown experiment {args.experiment!r}; choose from: {', '.join(table)}")
    mod = table[args.experiment]
    ep = _experiment_parser(args.experiment, mod)
    if args.help:
        ep.print_help()
        parser.exit(0)
    ns, unknown = ep.parse_known_args(extras)
    if unknown:
        names = ", ".join("--" + f.name.replace("_", "-") for f in dataclasses.fields(mod.Config))
        ep.error(f"unrecognized arguments: {' '.join(unknown)}; valid options of {args.experiment}: {names}")
    try:
        values = coerce_overrides(mod.Config, vars(ns))
        cfg = mod.quick(mod.Config()) if args.quick else mod.Config()
        dataclasses.replace(cfg, **values)          # the Config validates the combination
    except (ValueError, TypeError) as exc:
        ep.error(str(exc))
    return values


def _require_torch_installed(engine) -> None:
    """ValueError (one line, exit 1) before anything is written when the torch engine lacks torch."""
    if engine in ("torch", "both"):
        from .engines.pytorch import TORCH_MISSING, torch_available
        if not torch_available():
            raise ValueError(TORCH_MISSING)


def _cmd_crosscheck(args) -> int:
    _require_torch_installed("torch")
    from ._io import atomic_write
    from .engines.crosscheck import format_report, run_crosscheck

    print(f"normlab crosscheck: NumPy engine vs torch engine, same start, same batches, "
          f"{args.steps} steps (float64 must agree to {args.tolerance:g}; float32 drift is measured)",
          flush=True)
    report = run_crosscheck(steps=args.steps, seed=args.seed, tolerance=args.tolerance)
    print(format_report(report))
    if args.json:
        payload = json.dumps(report, indent=2)
        atomic_write(args.json, lambda f: f.write(payload.encode()))
    return 0 if report["ok"] else 1


def _cmd_run(args) -> int:
    from .reproduce import reproduce
    _require_torch_installed(args.overrides.get("engine"))
    out = args.out or os.path.join("runs", f"{args.experiment}-{_stamp()}")
    reporter = _Reporter()
    try:
        outcome = reproduce(out, names=[args.experiment], quick=args.quick, jobs=args.jobs,
                            scheduler=args.scheduler, overrides={args.experiment: args.overrides},
                            progress=reporter, yes=args.yes, command=f"normlab run {args.experiment}")
    except KeyboardInterrupt as exc:
        reporter._close()
        return _interrupted(exc, out)
    finally:
        reporter._close()
    return _finish_outcome(outcome)


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce
    _require_torch_installed(args.engine)
    reporter = _Reporter()
    out = args.resume or args.out or os.path.join("runs", _stamp())
    try:
        if args.resume:
            outcome = reproduce(out, resume=True, jobs=args.jobs, scheduler=args.scheduler,
                                progress=reporter, yes=args.yes, command="normlab reproduce --resume")
        else:
            outcome = reproduce(out, names=args.only, quick=args.quick, jobs=args.jobs, scheduler=args.scheduler,
                                progress=reporter, engine=args.engine, yes=args.yes, suite=args.suite or "course",
                                command="normlab reproduce")
    except KeyboardInterrupt as exc:
        reporter._close()
        return _interrupted(exc, out)
    finally:
        reporter._close()
    return _finish_outcome(outcome)


def _cmd_report(args) -> int:
    from .reproduce import rebuild
    reporter = _Reporter()
    try:
        return _finish_outcome(rebuild(args.run_dir, progress=reporter))
    finally:
        reporter._close()


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="normlab", description="A laboratory for normalization layers.")
    parser.add_argument("--version", action="version", version=f"normlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    ls = sub.add_parser("list", help="list the experiments of a suite (name, training runs, title)",
                        description="List the experiments of a suite in order (default: the course's).")
    ls.add_argument("--suite", choices=_SUITES, default="course",
                    help="course (the assignment's experiments), papers (landmark results beside the "
                         "papers' numbers) or all")
    ls.set_defaults(func=_cmd_list)
    r = sub.add_parser("run", help="run one experiment (options override its configuration) and "
                                   "write its report", add_help=False, allow_abbrev=False,
                       usage="normlab run EXPERIMENT [--FIELD VALUE ...] [--quick] [--jobs N] "
                             "[--out DIR] [--scheduler ADDRESS] [--yes]",
                       description="Run one experiment into a new run directory. Every field of the "
                                   "experiment's configuration is an option: `normlab run EXPERIMENT "
                                   "--help` lists them with the course defaults.")
    r.add_argument("-h", "--help", action="store_true", help="show this help (or the experiment's options)")
    r.add_argument("experiment", nargs="?", metavar="EXPERIMENT", help="an experiment from `normlab list`")
    _sweep_options(r, default_out="runs/EXPERIMENT-TIMESTAMP")
    r.set_defaults(func=_cmd_run)
    rp = sub.add_parser("reproduce", help="run every experiment of a suite and write one report",
                        allow_abbrev=False,
                        description="Run every experiment of a suite (default: the course's) as one parallel "
                                    "sweep and write the "
                                    "run directory: config.json, runs.sqlite, per-run histories, "
                                    "figures, metrics.json, report.md and a self-contained report.html.")
    rp.add_argument("--suite", choices=_SUITES,
                    help="course (default: the assignment's experiments), papers (landmark normalization "
                         "results beside the papers' own numbers, each with a verdict) or all")
    rp.add_argument("--only", metavar="NAME,...", type=lambda t: [n for n in t.split(",") if n],
                    help="run only these experiments (comma-separated names from `normlab list`)")
    rp.add_argument("--engine", choices=("numpy", "torch", "both", "auto"),
                    help="train every experiment's nets on this engine; 'both' puts the torch engine "
                         "(normlab[torch]) beside the NumPy engine in every figure and table "
                         "(default: each experiment's own, see `normlab run NAME --help`)")
    rp.add_argument("--resume", metavar="RUN_DIR",
                    help="finish the sweep of an interrupted run directory (trains only missing runs)")
    _sweep_options(rp, default_out="runs/TIMESTAMP")
    rp.set_defaults(func=_cmd_reproduce)
    rr = sub.add_parser("report", help="rebuild a run directory's figures and report from its store "
                                       "(no training)",
                        description="Re-analyze RUN_DIR from its config.json and runs.sqlite and rewrite "
                                    "its figures, metrics.json, report.md and report.html.")
    rr.add_argument("run_dir", metavar="RUN_DIR")
    rr.set_defaults(func=_cmd_report)
    parser.commands = {"run": r, "reproduce": rp}
    g = sub.add_parser("gradcheck", help="print the gradient-check table of every layer and net",
                       description="Check every layer and net against float64 central differences and "
                                   "print the relative errors beside the bounds the course states.")
    g.add_argument("--seed", type=int, default=0, help="seed for inputs and upstream gradients (default 0)")
    g.add_argument("--layers-only", action="store_true", help="skip the (slower) net-level checks")
    g.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    g.set_defaults(func=_cmd_gradcheck)
    x = sub.add_parser("crosscheck", help="check that the NumPy and torch engines agree (needs normlab[torch])",
                       description="Train the seed nets (no norm, batch norm, layer norm, dropout; conv net "
                                   "with spatial batch norm and group norm) on both engines from the same "
                                   "start on the same batches and print the relative differences of the "
                                   "per-step losses, parameters, running statistics and train/eval-mode "
                                   "outputs, in float64 (asserted) and float32 (measured). A control with "
                                   "mismatched momentum conventions must fail. Exit 1 unless float64 agrees.")
    x.add_argument("--steps", type=_positive_int, default=100, help="update steps per net (default 100)")
    x.add_argument("--seed", type=int, default=0, help="seed for weights, data and batches (default 0)")
    x.add_argument("--tolerance", type=float, default=1e-9,
                   help="largest float64 relative difference accepted (default 1e-9)")
    x.add_argument("--json", metavar="PATH", help="also write the measurements as JSON to PATH")
    x.set_defaults(func=_cmd_crosscheck)
    d = sub.add_parser("data", help="find, verify and download datasets (Fashion-MNIST, MNIST, CIFAR-10)",
                       description="Datasets are looked for in --dir, else $NORMLAB_DATA/<name>, "
                                   "~/.cache/normlab/<name> and /usr/share/datasets/<name>.")
    dsub = d.add_subparsers(dest="data_command", metavar="{info,fetch}")
    dsub.required = True
    di = dsub.add_parser("info", help="where each dataset is, whether it is the official release, "
                                      "its shapes and class counts")
    di.add_argument("names", nargs="*", metavar="NAME", help="fashion-mnist, mnist, cifar-10 (default: all)")
    di.add_argument("--dir", metavar="DIR", help="look only in DIR (the dataset folder or its parent)")
    di.set_defaults(func=_cmd_data_info)
    df = dsub.add_parser("fetch", help="download a dataset from its official source (MD5-verified)")
    df.add_argument("name", metavar="NAME", help="fashion-mnist, mnist or cifar-10")
    df.add_argument("--dir", metavar="DIR", help="download into DIR (default: $NORMLAB_DATA or ~/.cache/normlab)")
    df.add_argument("--mirror", metavar="URL", action="append",
                    help="download from URL instead of the official sources (repeatable; files must "
                         "still match the published MD5)")
    df.set_defaults(func=_cmd_data_fetch)
    return parser


_SUITES = ("course", "papers", "pitfalls", "all")     # normlab.lab.plan.SUITES (not imported here: numpy is not yet)


def _sweep_options(p, default_out):
    p.add_argument("--quick", action="store_true", help="reduced sizes (seconds to minutes; what CI runs)")
    p.add_argument("--jobs", type=_positive_int, metavar="N",
                   help="worker processes (default: the CPUs available)")
    p.add_argument("--out", metavar="DIR", help=f"the new run directory (default: {default_out})")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the training runs on a Dask scheduler (e.g. tcp://host:8786)")
    p.add_argument("--yes", action="store_true",
                   help="start even when the sweep is estimated to need more than 80%% of the available "
                        "memory or more than 12 hours (normlab.lab.budget)")


def _parse(argv):
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.command == "run":
        run_parser = parser.commands["run"]
        args.overrides = _run_overrides(parser, run_parser, args, extras)
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if args.command == "reproduce":
        rp = parser.commands["reproduce"]
        if args.resume and (args.only or args.quick or args.out or args.engine or args.suite):
            rp.error("--resume RUN_DIR continues that directory with its own configuration; "
                     "leave out --only, --suite, --quick, --engine and --out")
        if args.only and args.suite:
            rp.error("--only names the experiments itself; leave out --suite (or --only)")
        if args.only:
            from .lab.plan import recipes
            unknown = [n for n in args.only if n not in recipes()]
            if unknown:
                rp.error(f"unknown experiment(s) {', '.join(unknown)}; choose from: {', '.join(recipes())}")
    return args


def main(argv: list[str] | None = None) -> int:
    from ._threads import pin_blas_threads
    pin_blas_threads()      # before NumPy is first imported (see the module docstring)
    args = _parse(argv)
    previous = _handle_sigterm()
    try:
        return args.func(args)
    except MemoryError as exc:
        print(f"normlab: error: out of memory{f' ({exc})' if str(exc) else ''}; use smaller sizes or "
              f"fewer --jobs", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        if not getattr(args, "scheduler", None):
            raise
        print(f"normlab: error: {exc}", file=sys.stderr)   # Dask missing or unreachable
        return 1
    except (ValueError, OSError) as exc:   # user errors: one line, no traceback
        print(f"normlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print("normlab: " + ("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"),
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _handle_sigterm():
    """Make SIGTERM unwind like Ctrl-C (see :class:`Terminated`); returns the handler it
    replaced (None when not in the main thread, where handlers cannot be set)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
