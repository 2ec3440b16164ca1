"""The ``normlab`` command line.

    normlab gradcheck [--seed N] [--layers-only] [--json PATH]

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
