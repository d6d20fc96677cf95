"""Builds the lrtune package with its generated gRPC modules.

The .proto files are the repository's (../../proto, or $LRTUNE_PROTO_DIR);
lrtune/generate.py runs protoc and grpc_python_plugin into the build's
lrtune/_gen, where the package finds them (lrtune/__init__.py). Metadata is
in pyproject.toml.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithProtos(build_py):
    """build_py, then the gRPC modules into <build_lib>/lrtune/_gen."""

    def run(self):
        super().run()
        sys.path.insert(0, HERE)
        from lrtune import generate  # noqa: E402  (the source tree's)
        proto_dir = os.environ.get("LRTUNE_PROTO_DIR") or os.path.normpath(
            os.path.join(HERE, "..", "..", "proto"))
        out = os.path.join(self.build_lib, "lrtune", "_gen")
        try:
            generate.generate(out_dir=out, proto_dir=proto_dir)
        except RuntimeError as e:
            raise SystemExit(f"lrtune: cannot generate the gRPC modules: {e}")


setup(cmdclass={"build_py": BuildWithProtos})
