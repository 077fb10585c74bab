"""``modelplane crds``: write (or check) the CRD YAML generated from the API types."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelplane.api.crd import all_crds, to_yaml


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("crds", help="generate the CustomResourceDefinitions")
    p.add_argument("--out", type=Path, help="directory to write; stdout when omitted")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the files in --out differ from the generated ones")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rendered = {name: to_yaml(obj) for name, obj in all_crds().items()}
    if args.out is None:
        print("---\n".join(rendered.values()), end="")
        return 0
    stale = [n for n, text in rendered.items()
             if not (args.out / n).exists() or (args.out / n).read_text() != text]
    if args.check:
        for name in stale:
            print(f"stale: {args.out / name} (run `modelplane crds --out {args.out}`)")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out / name).write_text(text)
    return 0
