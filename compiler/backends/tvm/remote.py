"""Tuning for a device over TVM RPC: `dlc compile --tune N --rpc HOST:PORT --device-key KEY`.

The device runs TVM's RPC server registered with a TVM RPC tracker under KEY (a bundle's
`rpc_server.py`, TVM's `python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY`, or
`dlc board rpc-server` for the emulated board); this machine builds every candidate, cross-links
it with the target's compiler and hands it to MetaSchedule's RPCRunner, which asks the tracker
for the device, uploads the library and times it there. Nothing here speaks a protocol of its own.

What the device needs is TVM's runtime only: `random_fill_for_measure`, which MetaSchedule's
default argument allocation calls on the device, lives in TVM's compiler library, so arguments
are filled here with numpy and copied over (`alloc_on_host`). Candidates are linked into a shared
library here (`export_shared`), not shipped as a .tar for the device to link: a board has no
compiler.
"""
from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass


class RemoteError(Exception):
    """The tracker or the device cannot be used; the message says which and what to start."""


@dataclass(frozen=True)
class Remote:
    """A device at a TVM RPC tracker, and the compiler that links code for it."""

    host: str
    port: int
    key: str
    cc: str | None
    session_timeout_s: float = 120.0

    @property
    def tracker(self) -> str:
        return f"{self.host}:{self.port}"


def parse_tracker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--rpc expects the tracker's HOST:PORT, e.g. 127.0.0.1:9190; got `{text}`")
    return host, int(port)


def probe(remote: Remote, target_json: dict) -> int:
    """Check that the tracker answers, has a device under the key, and that the device loads and
    runs code built for the target; return the thread count candidates will run with there."""
    import numpy as np
    import tvm
    from tvm import rpc, te

    try:
        with socket.create_connection((remote.host, remote.port), timeout=5):
            pass
    except OSError as err:
        raise RemoteError(f"cannot reach the RPC tracker at {remote.tracker}: {err.strerror or err}; start one "
                          f"with `python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port {remote.port}`") from None
    summary = rpc.connect_tracker(remote.host, remote.port).summary()
    queues = summary.get("queue_info", {})
    if remote.key not in queues:
        have = ", ".join(f"`{k}`" for k in sorted(queues)) or "none"
        raise RemoteError(f"the RPC tracker at {remote.tracker} has no device `{remote.key}` (it has: {have}); "
                          f"on the device run `python3 rpc_server.py --tracker {remote.tracker} --key {remote.key}`")
    n = 64
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: a[i] + 1.0, name="b")
    lib = tvm.build(te.create_prim_func([a, b]), target=tvm.target.Target(target_json))
    with tempfile.TemporaryDirectory(prefix="dlc-probe-") as tmp:
        path = export_shared(remote.cc, lib, tmp)
        session = rpc.connect_tracker(remote.host, remote.port).request(
            remote.key, priority=1, session_timeout=remote.session_timeout_s)
        try:
            session.upload(path)
            loaded = session.load_module(os.path.basename(path))
        except Exception as err:  # the device's loader refuses the library: another architecture
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RemoteError(f"device `{remote.key}` cannot load code built for {target_json.get('mtriple') or 'this target'}: "
                              f"{first}") from None
        dev = session.cpu(0)
        x = tvm.runtime.tensor(np.arange(n, dtype="float32"), dev)
        y = tvm.runtime.empty((n,), "float32", dev)
        loaded(x, y)
        if not np.array_equal(y.numpy(), np.arange(n, dtype="float32") + 1):
            raise RemoteError(f"device `{remote.key}` ran a probe kernel and returned wrong values")
        return int(session.get_function("runtime.NumThreads")())


def builder(remote: Remote, workers: int):
    """MetaSchedule's LocalBuilder, each candidate linked into a shared library for the device."""
    import functools

    from tvm.s_tir import meta_schedule as ms

    from .tune import build_candidate

    return ms.builder.LocalBuilder(max_workers=workers, timeout_sec=60.0, f_build=build_candidate,
                                   f_export=functools.partial(export_shared, remote.cc))


def runner(remote: Remote, evaluator_config):
    """MetaSchedule's RPCRunner on the tracker's device `remote.key`, one session at a time."""
    from tvm.s_tir import meta_schedule as ms

    config = ms.runner.RPCConfig(tracker_host=remote.host, tracker_port=remote.port, tracker_key=remote.key,
                                 session_priority=1, session_timeout_sec=int(remote.session_timeout_s))
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator_config, max_workers=1,
                               f_alloc_argument=alloc_on_host, f_run_evaluator=measure_remote)


def export_shared(cc: str | None, mod, directory: str | None = None) -> str:
    """The candidate as a shared library linked here (with `cc` for another machine)."""
    path = os.path.join(directory or tempfile.mkdtemp(prefix="dlc-cand-"), "candidate.so")
    mod.export_library(path, **({"cc": cc} if cc else {}))
    return path


def alloc_on_host(session, device, args_info, alloc_repeat: int):
    """Arguments filled with uniform noise here and copied to the device (whose runtime has no
    random_fill). Module level, for the runner's worker process."""
    import numpy as np
    import tvm

    rng = np.random.default_rng(0)
    repeated = []
    for _ in range(alloc_repeat):
        args = []
        for kind, dtype, shape in args_info:
            if kind != "TENSOR":
                raise NotImplementedError(f"argument of kind {kind}")
            data = rng.uniform(-1, 1, size=shape) if "float" in dtype else rng.integers(0, 8, size=shape)
            args.append(tvm.runtime.tensor(np.asarray(data).astype(dtype), device))
        repeated.append(args)
    return repeated


def measure_remote(session, rt_mod, device, evaluator_config, repeated_args) -> list[float]:
    """The local runner's measure (fastest of the repeats), timed on the device."""
    from .tune import measure_candidate

    return measure_candidate(rt_mod, device, evaluator_config, repeated_args)
