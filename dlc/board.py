"""An emulated Arm board: a Debian arm64 Python 3.11 under `qemu-aarch64`, to run what
`dlc package --platform aarch64` makes without a board at hand.

The sysroot is Debian's own arm64 packages unpacked (`apt-get download` + `dpkg-deb -x`), never
installed: `apt-get install python3:arm64` would replace this machine's python3. binfmt_misc is
not assumed, so every aarch64 program starts as `qemu-aarch64 -L SYSROOT PROGRAM`. What is built
is cached under `cache_dir()` and reused; `ensure_board` builds what is missing and nothing else.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Python 3.11 and what it links (Debian 12, the measured set), plus libstdc++ for TVM
PACKAGES = (
    "libc6", "libgcc-s1", "libstdc++6", "python3.11-minimal", "libpython3.11-minimal",
    "libpython3.11-stdlib", "libexpat1", "zlib1g", "libffi8", "libssl3", "libbz2-1.0", "liblzma5",
    "libcrypt1", "libuuid1", "libsqlite3-0", "libncursesw6", "libtinfo6", "libreadline8", "libdb5.3",
    "libgdbm6", "libgdbm-compat4", "libnsl2", "libtirpc3", "libgssapi-krb5-2", "libkrb5-3",
    "libk5crypto3", "libcom-err2", "libkrb5support0", "libkeyutils1",
)
QEMU = "qemu-aarch64"


class BoardError(Exception):
    """The emulated board cannot be set up or run here; the message says what is missing."""


def cache_dir() -> Path:
    """Where dlc keeps what it downloads or builds once: $DLC_CACHE, else ~/.cache/dlc."""
    return Path(os.environ.get("DLC_CACHE") or Path.home() / ".cache" / "dlc")


@dataclass(frozen=True)
class Board:
    """An emulated aarch64 Linux: `python(...)` is the argv that runs its Python 3.11."""

    sysroot: Path

    @property
    def interpreter(self) -> Path:
        return self.sysroot / "usr" / "bin" / "python3.11"

    def python(self, *args: str | Path) -> list[str]:
        return [QEMU, "-L", str(self.sysroot), str(self.interpreter), *map(str, args)]

    def program(self, binary: str | Path, *args: str | Path, sysroot: Path | None = None) -> list[str]:
        """argv for an aarch64 executable (the C++ runner): the cross toolchain's libc is enough."""
        return [QEMU, "-L", str(sysroot or self.sysroot), str(binary), *map(str, args)]


def board_dir() -> Path:
    return cache_dir() / "boards" / "aarch64"


def existing_board() -> Board | None:
    """The board if `dlc board setup` made it (with a qemu to run it), else None."""
    sysroot = board_dir() / "sysroot"
    try:
        complete = (sysroot / ".complete").read_text().strip() == _stamp()
    except OSError:
        complete = False
    return Board(sysroot) if complete and shutil.which(QEMU) else None


def ensure_board(log=print) -> Board:
    """The emulated board, built if missing (needs qemu-user and Debian's arm64 package lists)."""
    board = existing_board()
    if board is not None:
        return board
    if shutil.which(QEMU) is None:
        raise BoardError(f"`{QEMU}` is not installed: `apt-get install --no-install-recommends qemu-user`")
    target = board_dir() / "sysroot"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        debs = Path(tmp) / "debs"
        debs.mkdir()
        _download(debs, log)
        root = Path(tmp) / "sysroot"
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(root)])
        (root / ".complete").write_text(_stamp() + "\n")
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)  # whole or not at all
    board = Board(target)
    _check(board)
    log(f"board: arm64 sysroot at {target} ({len(PACKAGES)} Debian packages)")
    return board


def _download(into: Path, log) -> None:
    if "arm64" not in _run(["dpkg", "--print-foreign-architectures"]).split():
        log("board: dpkg --add-architecture arm64; apt-get update")
        _run(["dpkg", "--add-architecture", "arm64"])
        _run(["apt-get", "update", "-qq"])
    names = [f"{p}:arm64" for p in PACKAGES]
    try:
        _run(["apt-get", "download", "-qq", *names], cwd=into)
    except BoardError:  # stale package lists (a security update replaced a version): refresh once
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "download", "-qq", *names], cwd=into)


def _check(board: Board) -> None:
    out = _run(board.python("-c", "import platform, ssl, zlib; print(platform.machine())"))
    if out.strip() != "aarch64":
        raise BoardError(f"the emulated Python says it runs on `{out.strip()}`, not aarch64")


def _stamp() -> str:
    return hashlib.sha256(" ".join(PACKAGES).encode()).hexdigest()[:16]


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise BoardError(f"`{argv[0]}` is not installed") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BoardError(f"`{' '.join(argv[:3])} ...` failed: " + " / ".join(tail))
    return proc.stdout


def add_parser(sub) -> None:
    p = sub.add_parser("board", help="an emulated aarch64 board (qemu-user) to run `dlc package` bundles on")
    verbs = p.add_subparsers(title="board commands", metavar="VERB", required=True)
    setup = verbs.add_parser("setup", help="build the board and fetch the device wheels (cached; needs the network once)")
    setup.set_defaults(run=command_setup, command="board")
    run = verbs.add_parser("run", help="install a bundle on the board (once) and run it there")
    run.add_argument("bundle", type=Path, metavar="BUNDLE.tar.gz")
    run.add_argument("--runner", choices=["python", "cpp"], default="python",
                     help="run.py on the board's Python, or the bundle's C++ runner bin/dlc-run")
    run.add_argument("--input", action="append", default=[], metavar="[NAME=]X.npy", help="an input array; repeatable")
    run.add_argument("--output", "-o", type=Path, metavar="Y.npy|DIR", help="where to save the output")
    run.set_defaults(run=command_run, command="board")
    rpc = verbs.add_parser("rpc-server", help="serve the board to a TVM RPC tracker, for `dlc compile --tune --rpc`")
    rpc.add_argument("--tracker", required=True, metavar="HOST:PORT", help="the RPC tracker to register with")
    rpc.add_argument("--key", default="emulated-aarch64", help="the board's key at the tracker (default: emulated-aarch64)")
    rpc.add_argument("--port", type=int, default=9090, help="first port to try (default: 9090)")
    rpc.add_argument("--threads", type=int, default=1, help="threads a candidate runs with (default: 1)")
    rpc.set_defaults(run=command_rpc_server, command="board")


def command_setup(args) -> int:
    import time

    from dlc.package import PLATFORMS, PackageError, fetch_wheels

    start = time.perf_counter()
    try:
        board = ensure_board()
        for platform in PLATFORMS.values():  # x86_64 too: the suite installs dlc-runtime alone from them
            wheels = fetch_wheels(platform, "3.11")
            print(f"board: {len(wheels)} {platform.machine} wheels in {platform.cache('3.11')}")
    except (BoardError, PackageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"board: ready in {time.perf_counter() - start:.1f} s: {' '.join(board.python())}")
    return 0


def command_run(args) -> int:
    try:
        board = ensure_board()
        home = install_bundle(board, args.bundle)
    except BoardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    rest = [*(f"--input={i}" for i in args.input), *([f"--output={args.output}"] if args.output else [])]
    if args.runner == "cpp":
        if not (home / "bin" / "dlc-run").exists():
            print(f"error: `{args.bundle}` has no C++ runner (made without aarch64-linux-gnu-g++?)", file=sys.stderr)
            return 1
        argv = board.program(home / "bin" / "dlc-run", home / "artifact", *rest)
    else:
        argv = board.python(home / "run.py", *rest)
    return subprocess.call(argv)


def command_rpc_server(args) -> int:
    """The bundle's rpc_server.py on the board's Python, with TVM's runtime from the device wheels."""
    import dlc.templates

    try:
        board = ensure_board()
        site = ensure_runtime_site()
    except BoardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    script = Path(dlc.templates.__file__).parent / "bundle" / "rpc_server.py"
    env = {**os.environ, "PYTHONPATH": str(site)}
    argv = board.python(script, "--tracker", args.tracker, "--key", args.key, "--host", "127.0.0.1",
                        "--port", str(args.port), "--threads", str(args.threads))
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 130


def ensure_runtime_site() -> Path:
    """numpy and TVM's runtime (the bundles' trimmed wheel) for the board, installed once by this
    machine's pip with --target and the aarch64 platform tags (nothing runs under emulation)."""
    from dlc.package import PLATFORMS, TRIMMED, PackageError, fetch_wheels, trim_wheel

    platform = PLATFORMS["aarch64"]
    try:
        wheels = fetch_wheels(platform, "3.11", log=lambda m: print(m, file=sys.stderr))
    except PackageError as err:
        raise BoardError(str(err)) from None
    site = board_dir() / "runtime-site"
    stamp = " ".join(sorted(w.name for w in wheels if not w.name.startswith("pip-")))
    try:
        if (site / ".complete").read_text() == stamp:
            return site
    except OSError:
        pass
    with tempfile.TemporaryDirectory(dir=board_dir()) as tmp:
        picked = []
        for wheel in wheels:
            if wheel.name.startswith("pip-"):
                continue
            if wheel.name.startswith("apache_tvm-"):
                trim_wheel(wheel, Path(tmp) / wheel.name, TRIMMED)
                wheel = Path(tmp) / wheel.name
            picked.append(str(wheel))
        target = Path(tmp) / "site"
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
              "--no-deps", "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
              "--abi", "cp311", *(f"--platform={t}" for t in platform.tags), "--target", str(target), *picked])
        (target / ".complete").write_text(stamp)
        if site.exists():
            shutil.rmtree(site)
        target.rename(site)  # whole or not at all
    return site


def install_bundle(board: Board, bundle: Path) -> Path:
    """Unpack BUNDLE into the board's home (once per bundle content) and run its install.py there."""
    import tarfile

    try:
        digest = hashlib.sha256(bundle.read_bytes()).hexdigest()[:16]
    except OSError as err:
        raise BoardError(f"cannot read `{bundle}`: {err.strerror}") from None
    home = board_dir() / "home" / digest
    if (home / ".installed").exists():
        return _only_child(home)
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    try:
        with tarfile.open(bundle) as tar:
            tar.extractall(home, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise BoardError(f"`{bundle}` is not a dlc bundle: {err}") from None
    root = _only_child(home)
    proc = subprocess.run(board.python(root / "install.py"), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BoardError(f"install.py failed on the board: {proc.stderr.strip().splitlines()[-1:]}")
    (home / ".installed").write_text("")
    return root


def _only_child(home: Path) -> Path:
    children = [p for p in home.iterdir() if p.is_dir()]
    if len(children) != 1 or not (children[0] / "install.py").exists():
        raise BoardError(f"a bundle unpacks to one folder with install.py; found {[p.name for p in children]}")
    return children[0]
