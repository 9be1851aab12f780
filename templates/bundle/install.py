"""Install this bundle's runtime, offline: `python3 install.py` (into ./site, for run.py), or
`python3 install.py --env` (into the environment of the Python that runs it, e.g. a venv).

Uses the pip wheel in wheels/ (a device's Python may have no pip) and only the wheels beside it:
nothing is downloaded. Written by `dlc package`; needs only Python's standard library.
"""
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WHEELS = os.path.join(HERE, "wheels")


def main(argv):
    if argv not in ([], ["--env"]):
        sys.exit("usage: python3 install.py [--env]")
    pip = glob.glob(os.path.join(WHEELS, "pip-*.whl"))
    if len(pip) != 1:
        sys.exit(f"error: expected one pip wheel in {WHEELS}, found {len(pip)}")
    where = [] if argv else ["--target", os.path.join(HERE, "site")]
    os.environ.update(PIP_ROOT_USER_ACTION="ignore", PIP_NO_CACHE_DIR="1")
    # pip in this process, from its wheel: an emulated board (qemu-user without binfmt_misc)
    # cannot start another aarch64 process
    sys.path.insert(0, pip[0])
    from pip._internal.cli.main import main as pip_main

    return pip_main(["install", "--no-index", "--find-links", WHEELS, "--disable-pip-version-check",
                     "--no-warn-script-location", "--quiet", *where, "dlc-runtime"])

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
