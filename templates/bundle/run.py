"""Run this bundle's artifact: `python3 run.py --input [NAME=]X.npy ... --output Y.npy|DIR`.

The same command as `dlc-run artifact ...` (dlc.runtime), with the runtime `install.py` put in
./site (or in this Python's environment after `install.py --env`). Written by `dlc package`.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(HERE, "site")):
    sys.path.insert(0, os.path.join(HERE, "site"))

from dlc.runtime.__main__ import main  # noqa: E402 (after the path)

if __name__ == "__main__":
    sys.exit(main([os.path.join(HERE, "artifact"), *sys.argv[1:]]))
