"""Tuning for a device over TVM RPC (issue 19, part 3): a real TVM RPC tracker on localhost, the
emulated aarch64 board's RPC server under qemu-aarch64 (`dlc board rpc-server`), and
`dlc compile --target aarch64 --tune N --rpc HOST:PORT --device-key KEY` measuring there.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "digits_mlp.arch"  # 3 tuning tasks where digits_cnn has 7: the emulated board makes each trial slow
KEY = "emu-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dlc(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from dlc.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """A tracker and the emulated board's server registered with it; yields the tracker's address."""
    from tvm import rpc

    port, server_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("rpc")
    procs = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
                               "--port-end", str(port + 1)], stdout=open(log / "tracker.log", "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (log / "tracker.log").read_text()
                time.sleep(0.5)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", "import sys; from dlc.cli import main; sys.exit(main())", "board", "rpc-server",
             "--tracker", f"127.0.0.1:{port}", "--key", KEY, "--port", str(server_port)],
            stdout=open(log / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True, cwd="/"))
        deadline = time.monotonic() + 180  # importing TVM under emulation takes ~15 s
        while KEY not in rpc.connect_tracker("127.0.0.1", port).summary().get("queue_info", {}):
            assert procs[1].poll() is None and time.monotonic() < deadline, (log / "server.log").read_text()
            time.sleep(1)
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            with open(os.devnull, "w"):
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=30)


def test_tunes_on_the_emulated_board_and_a_second_compile_measures_nothing(tracker, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # the default database, under the device key
    args = [str(SPEC), "--target", "aarch64", "--tune", "3", "--rpc", tracker, "--device-key", KEY]
    proc = _dlc("compile", *args, "-o", str(tmp_path / "tuned"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"device `{KEY}` at {tracker} runs candidates on 1 thread(s)" in proc.stderr
    manifest = json.loads((tmp_path / "tuned" / "manifest.json").read_text())
    assert manifest["target"]["tvm"]["num-cores"] == 1
    tuning = manifest["tuning"]
    assert tuning["trials"] == 3 and tuning["tasks"] == 3 and tuning["estimated_ms"] is not None
    databases = list((tmp_path / "cache" / "dlc" / "tuning").iterdir())
    assert [d.name.startswith(f"llvm-aarch64-linux-gnu-{KEY}-") for d in databases] == [True]
    records = (databases[0] / "database_tuning_record.json").read_text().splitlines()
    assert len(records) >= 3

    proc = _dlc("compile", *args, "-o", str(tmp_path / "again"), env=env)
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())["tuning"]
    assert again["trials"] == 0 and again["tasks_reused"] == 3
    assert (databases[0] / "database_tuning_record.json").read_text().splitlines() == records

    # the tuned aarch64 build on the board computes what the untuned x86 build does
    proc = _dlc("compile", str(SPEC), "--target", "llvm", "--dim", "B=1", "-o", str(tmp_path / "x86"))
    assert proc.returncode == 0, proc.stderr
    proc = _dlc("package", str(tmp_path / "tuned"), "--platform", "aarch64", "-o", str(tmp_path / "tuned.tar.gz"))
    assert proc.returncode == 0, proc.stderr
    from dlc.board import ensure_board, install_bundle
    from dlc.runtime import load

    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    board = ensure_board()
    home = install_bundle(board, tmp_path / "tuned.tar.gz")
    proc = subprocess.run(board.program(home / "bin" / "dlc-run", home / "artifact", "--input", tmp_path / "x.npy",
                                        "--output", tmp_path / "y.npy"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    want, got = load(tmp_path / "x86")(x)["logits"], np.load(tmp_path / "y.npy")
    assert want.shape == got.shape
    assert float(np.abs(want - got).max()) <= 1e-5


@pytest.mark.parametrize("extra, status, message", [
    (["--tune", "4", "--rpc", "127.0.0.1:1", "--device-key", KEY], 1, "cannot reach the RPC tracker at 127.0.0.1:1"),
    (["--tune", "4", "--rpc", "{tracker}", "--device-key", "nope"], 1,
     f"has no device `nope` (it has: `{KEY}`)"),
    (["--rpc", "{tracker}", "--device-key", KEY], 2, "give --tune N too"),
    (["--tune", "4", "--rpc", "{tracker}"], 2, "--rpc needs --device-key KEY"),
    (["--tune", "4", "--rpc", "nowhere", "--device-key", KEY], 2, "--rpc expects the tracker's HOST:PORT"),
    (["--tune", "4"], 2, "measure them on the device: --rpc HOST:PORT --device-key KEY"),
])
def test_rpc_mistakes_are_one_line_and_write_nothing(tracker, tmp_path, extra, status, message):
    proc = _dlc("compile", str(SPEC), "--target", "aarch64", *(e.format(tracker=tracker) for e in extra),
                "--tune-db", str(tmp_path / "db"), "-o", str(tmp_path / "out"))
    assert proc.returncode == status
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "db").exists()
