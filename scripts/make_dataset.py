#!/usr/bin/python3
"""Writes a synthetic data set by reference for lrtune: DIR/NAME/manifest.json
and .npy arrays (docs/engine.md, "Data sets by reference").

Gaussian blobs: ROWS samples of FEATURES float32 values around one of CLASSES
random centers, int64 labels; learnable, so a range test on it finds bounds.
The arrays are written in chunks through np.lib.format.open_memmap, so a set
bigger than this machine's memory can be made too.

  /usr/bin/python3 scripts/make_dataset.py DIR NAME --rows 70000 --features 784
"""
import argparse
import json
import os

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="the data directory (a worker's --data-dir)")
    p.add_argument("name", help="the data set's name")
    p.add_argument("--rows", type=int, default=70000)
    p.add_argument("--features", type=int, default=784)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=8192, help="rows per write")
    a = p.parse_args()

    out = os.path.join(a.dir, a.name)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    centers = rng.normal(0.0, 0.25, size=(a.classes, a.features))
    x = np.lib.format.open_memmap(os.path.join(out, "x.npy"), mode="w+",
                                  dtype=np.float32, shape=(a.rows, a.features))
    y = np.lib.format.open_memmap(os.path.join(out, "y.npy"), mode="w+",
                                  dtype=np.int64, shape=(a.rows,))
    for start in range(0, a.rows, a.chunk):
        n = min(a.chunk, a.rows - start)
        labels = rng.integers(0, a.classes, size=n)
        x[start:start + n] = centers[labels] + rng.standard_normal(
            (n, a.features), dtype=np.float32)
        y[start:start + n] = labels
    x.flush()
    y.flush()
    del x, y
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"shape": [a.features], "dtype": "float32",
                   "classes": a.classes,
                   "description": "synthetic Gaussian blobs"}, f)


if __name__ == "__main__":
    main()
