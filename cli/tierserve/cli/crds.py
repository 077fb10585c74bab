"""``tierserve crds``: write (or check) the CRD YAML generated from the API types.

The same files go to ``crds/`` (kubectl users) and ``charts/tierserve/crds/`` (Helm
installs CRDs from there); ``--check`` fails when any copy is stale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tierserve.core.api.crd import all_crds, to_yaml
from tierserve.core.cliflags import add_log_level


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("crds", help="generate the CustomResourceDefinitions")
    p.add_argument("--out", type=Path, action="append", default=[],
                   help="directory to write (repeatable); stdout when omitted")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the files in --out differ from the generated ones")
    add_log_level(p)
    p.set_defaults(func=run)


def stale_files(out: Path) -> list[Path]:
    return [out / n for n, obj in all_crds().items()
            if not (out / n).exists() or (out / n).read_text() != to_yaml(obj)]


def run(args: argparse.Namespace) -> int:
    rendered = {name: to_yaml(obj) for name, obj in all_crds().items()}
    if not args.out:
        print("---\n".join(rendered.values()), end="")
        return 0
    if args.check:
        stale = [f for out in args.out for f in stale_files(out)]
        for f in stale:
            print(f"stale: {f} (run `make crds`)")
        return 1 if stale else 0
    for out in args.out:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (out / name).write_text(text)
    return 0
