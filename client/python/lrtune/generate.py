"""Generates the Python gRPC code of proto/lrtune/v1/*.proto.

    python3 -m lrtune.generate            # into client/python/lrtune/_gen
    python3 -m lrtune.generate --out DIR  # then set LRTUNE_GEN_DIR=DIR

Uses Debian's protoc (3.21) and grpc_python_plugin (grpcio 1.51); grpc_tools
is not needed. The modules land in OUT/lrtune/v1/, keeping the
`from lrtune.v1 import ...` imports protoc writes; the lrtune package adds
OUT/lrtune to its __path__ so that those imports resolve.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(_HERE, "_gen")
DEFAULT_PROTO = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "proto"))


def generate(out_dir=DEFAULT_OUT, proto_dir=DEFAULT_PROTO,
             protoc="protoc", plugin="/usr/bin/grpc_python_plugin"):
    """Writes the modules into out_dir/lrtune/v1; raises RuntimeError."""
    protos = sorted(glob.glob(os.path.join(proto_dir, "lrtune", "v1", "*.proto")))
    if not protos:
        raise RuntimeError(f"no .proto files under {proto_dir}/lrtune/v1")
    if shutil.which(protoc) is None:
        raise RuntimeError(f"{protoc} not found (Debian: apt install protobuf-compiler)")
    if not os.path.exists(plugin):
        raise RuntimeError(f"{plugin} not found (Debian: apt install protobuf-compiler-grpc)")
    v1 = os.path.join(out_dir, "lrtune", "v1")
    os.makedirs(v1, exist_ok=True)
    cmd = [protoc, "-I", proto_dir, f"--python_out={out_dir}",
           f"--grpc_out={out_dir}", f"--plugin=protoc-gen-grpc={plugin}"] + protos
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"protoc failed: {done.stderr.strip()}")
    for pkg in (os.path.join(out_dir, "lrtune"), v1):
        open(os.path.join(pkg, "__init__.py"), "a").close()
    return v1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--proto", default=DEFAULT_PROTO)
    args = parser.parse_args(argv)
    try:
        print(generate(args.out, args.proto))
    except RuntimeError as e:
        print(f"lrtune.generate: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
