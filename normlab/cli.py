"""The ``normlab`` command line.

    normlab gradcheck [--seed N] [--layers-only] [--json PATH]
    normlab data info [NAME ...] [--dir DIR]
    normlab data fetch NAME [--dir DIR] [--mirror URL ...]

Exit codes: 0 success, 1 a check failed or a user error (one line on stderr),
2 bad usage (argparse).
"""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__

__all__ = ["main"]


def _cmd_gradcheck(args) -> int:
    from .checkpoint import atomic_write
    from .gradcheck_suite import format_table, run_checks

    print("normlab gradient checks: float64 central differences vs analytic gradients, "
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="normlab", description="A laboratory for normalization layers.")
    parser.add_argument("--version", action="version", version=f"normlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    g = sub.add_parser("gradcheck", help="print the gradient-check table of every layer and net",
                       description="Check every layer and net against float64 central differences and "
                                   "print the relative errors beside the bounds the course states.")
    g.add_argument("--seed", type=int, default=0, help="seed for inputs and upstream gradients (default 0)")
    g.add_argument("--layers-only", action="store_true", help="skip the (slower) net-level checks")
    g.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    g.set_defaults(func=_cmd_gradcheck)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:   # user errors: one line, no traceback
        print(f"normlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("normlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
