#!/usr/bin/env bash
# Installs everything dlc and its tests need on a fresh Debian machine with Python 3.11:
# the aarch64 cross compiler (for `dlc compile --target aarch64`) and the Python package.
set -euo pipefail
cd "$(dirname "$0")"
# qemu-user runs `dlc package` bundles on the emulated aarch64 board (`dlc board`, tests/test_edge.py)
if ! command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user
fi
python3 -m pip install -e '.[test]'
# the emulated board (Debian's arm64 Python 3.11 unpacked into ~/.cache/dlc, never installed) and
# the aarch64 / x86_64 wheels bundles carry; cached, so a second run downloads nothing
(cd / && python3 -m dlc board setup)  # from /: the checkout's dlc/ would shadow the install
# torchvision's model definitions, for tests/test_pretrained.py (torchvision state_dicts into the zoo).
# --no-deps, so that it never touches the CPU torch above: its wheel requires torch==2.13.0 and is
# built against the CUDA build (its C ops do not load here; the test works around that). pillow,
# its other dependency, comes with the [test] extra.
python3 -m pip install --no-deps 'torchvision==0.28.0'
# torchattacks, the reference tests/test_attack.py compares FGSM and PGD with (tests only): --no-deps,
# since its requirements (torch, torchvision, requests, ...) would touch the pinned torch, and its
# import needs none beyond torch.
python3 -m pip install --no-deps 'torchattacks==3.5.1'
