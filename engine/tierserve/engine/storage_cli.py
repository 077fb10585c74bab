"""``tierserve storage-init``: put a model file into a directory (an init container's job).

In a cluster the children fetch the model before the engine starts, as KServe's storage
initializer does: an init container runs ``tierserve storage-init --uri URI --dest
/mnt/models`` into a volume the engine container mounts. It runs the same resolver as
the engines do in-process (:func:`tierserve.engine.model_source.resolve`): a file
already there with the object's size and checksum is kept (the cache claim a second
replica finds filled), anything else is downloaded beside it and renamed into place.
It prints the file's path and exits 0, or prints why not (naming the URI and the
cause) and exits 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tierserve.core.cliflags import add_log_level

DESCRIPTION = """\
Put the model file a URI names into a directory, as the init container of an engine
pod does, and print its path (exit 0), or print why not (exit 1). A file already there
with the object's size and checksum is kept (a filled cache claim); otherwise it is
downloaded beside it and renamed into place. hf://, s3:// and gs:// need the storage
extra (pip install 'tierserve[storage]'; the storage-initializer image has it).

environment:
  HF_TOKEN, HF_ENDPOINT       Hugging Face token (gated or private repos), another Hub
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL
                              S3 credentials (or the pod's IAM role), an S3-compatible store
  GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST
                              Google credentials (or Workload Identity; none: anonymous,
                              for public buckets), a Cloud Storage emulator
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("storage-init", help="fetch a model file into a directory",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uri", required=True, metavar="URI",
                   help="model URI: hf://ORG/REPO[@REVISION]/FILE, s3://BUCKET/KEY, "
                   "gs://BUCKET/OBJECT, pypi://DIST/PATH, pvc://CLAIM/PATH or file://PATH")
    p.add_argument("--dest", required=True, type=Path, metavar="DIR",
                   help="directory to put the file in (created if missing)")
    p.add_argument("--pvc-root", type=Path, metavar="DIR",
                   help="where the claim of a pvc:// URI is mounted")
    p.add_argument("--revision", metavar="REV",
                   help="Hub branch, tag or commit for an hf:// URI that names none "
                   "(default: main); one with a slash, such as refs/pr/1, goes here")
    add_log_level(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tierserve.engine.model_source import ModelSourceError, resolve

    try:
        path = resolve(args.uri, args.dest, pvc_root=args.pvc_root, revision=args.revision)
    except ModelSourceError as exc:
        print(f"tierserve storage-init: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tierserve storage-init: cannot write to {args.dest}: {exc}", file=sys.stderr)
        return 1
    print(path, flush=True)
    return 0
