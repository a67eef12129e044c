"""`python -m benchmarks [NAME...]`: run the benchmark modules, print every figure next to its goal, write
results.json, and with `--compare OLD.json` print each row before and after.

Each `bench_*` module has `measure() -> list[Figure]`. The modules in OPT_IN (the whole test suite, minutes)
run only when named, with `--with-suite`, or with MESHBOOK_BENCH_SUITE=1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from benchmarks._util import busy_warning, machine_info
from benchmarks.figures import Figure
from benchmarks.table import build_rows, compare, document, load_document, render

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
SUITE_ENV = "MESHBOOK_BENCH_SUITE"
OPT_IN = frozenset({"bench_suite"})


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmark modules to run (default: all): {', '.join(available())}"
    )
    parser.add_argument("--with-suite", action="store_true", help=f"also time `make test` (minutes; or {SUITE_ENV}=1)")
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="JSON",
        help="OLD.json: print before/after against this run; OLD.json NEW.json: compare two files, run nothing",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (default: %(default)s)")
    return parser


def _selected(names: list[str], with_suite: bool) -> list[str]:
    known = available()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}: expected some of {', '.join(known)}")
    if names:
        return names
    opt_in = with_suite or os.environ.get(SUITE_ENV) == "1"
    return [n for n in known if opt_in or n not in OPT_IN]


def _measure(name: str) -> list[Figure]:
    module = importlib.import_module(f"benchmarks.{name}")
    figures: list[Figure] = module.measure()
    return figures


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.compare and len(args.compare) > 2:
        raise SystemExit("--compare takes OLD.json, or OLD.json NEW.json")
    try:
        old = load_document(Path(args.compare[0])) if args.compare else None
        if args.compare and len(args.compare) == 2:
            assert old is not None
            print(compare(old, load_document(Path(args.compare[1]))))
            return 0
    except ValueError as exc:
        raise SystemExit(f"--compare: {exc}") from None

    names = _selected(args.names, args.with_suite)
    machine = machine_info()
    load = machine["load_at_start"]
    print(
        f"meshbook {machine['meshbook_commit']}, python {machine['python']}, {machine['cores']} cores, "
        f"load average {' '.join(f'{x:.2f}' for x in load)} at start; running: {', '.join(names)}",
        flush=True,
    )
    warning = busy_warning(load[0], machine["cores"])
    if warning:
        print(warning, flush=True)
    figures: list[Figure] = []
    failed: dict[str, str] = {}
    for name in names:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            measured = _measure(name)
            build_rows(measured)  # a figure in the wrong unit or without samples fails its module, not the table
            figures += measured
        except Exception as exc:  # one benchmark failing must not lose the others' figures
            traceback.print_exc()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            failed[name] = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        print(f"   {name} took {time.monotonic() - started:.0f} s", flush=True)
    machine["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    rows = build_rows(figures, ran=names, failed=failed)
    print()
    print(render(rows))
    if warning:
        print(warning)
    result = document(rows, machine, failed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.out}")
    if old is not None:
        print()
        print(compare(old, result))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
