"""Serve this device to a TVM RPC tracker, for `dlc compile --tune N --rpc HOST:PORT --device-key KEY`.

    python3 rpc_server.py --tracker HOST:9190 --key KEY [--threads N]

Uses the runtime `install.py` put in ./site (or this Python's environment): TVM's RPC server
needs only TVM's runtime library. It serves in this process (TVM's `python -m
tvm.exec.rpc_server` starts a child Python for it, which qemu-user without binfmt_misc cannot
run) and forks one process per tuning session, as TVM's does. Candidates run with --threads
threads (TVM_NUM_THREADS; default: TVM's, half the cores): dlc tunes for the count this server
reports. Written by `dlc package`.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(HERE, "site")):
    sys.path.insert(0, os.path.join(HERE, "site"))


def main():
    p = argparse.ArgumentParser(prog="rpc_server.py", description=__doc__.splitlines()[0])
    p.add_argument("--tracker", required=True, metavar="HOST:PORT", help="the RPC tracker to register with")
    p.add_argument("--key", required=True, help="this device's key at the tracker (dlc's --device-key)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    p.add_argument("--port", type=int, default=9090, help="first port to try (default: 9090)")
    p.add_argument("--threads", type=int, help="threads a candidate runs with (default: TVM's)")
    args = p.parse_args()
    host, _, port = args.tracker.rpartition(":")
    if not host or not port.isdigit():
        p.error(f"--tracker expects HOST:PORT, got `{args.tracker}`")
    if args.threads:
        os.environ["TVM_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")  # the runtime is all a server needs
    import logging

    from tvm.rpc.server import PopenRPCServerState

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    state = PopenRPCServerState(args.host, args.port, args.port + 100, tracker_addr=(host, int(port)), key=args.key)
    print(f"rpc_server: serving `{args.key}` on port {state.port}, registered with {args.tracker}", flush=True)
    state.thread.join()


if __name__ == "__main__":
    main()
