"""Start-up: how long a fresh process takes to import the runtime, load and run an artifact, and
check a spec (issue 21, "Loading and start-up").

`python benchmarks/startup.py [--runs 5] [--no-bytecode]` compiles the digits CNN
(spec/digits_cnn.arch, untuned, for this CPU) into a temporary directory, then times each case
in fresh processes, as the wall time of the whole process seen from here (interpreter start-up
included), and prints the median and range of `--runs` runs after one untimed warm-up:

  import dlc.runtime     `python -c 'import dlc.runtime'`
  load + first call      `load(ARTIFACT)(x)` through dlc.runtime, in-process phases beside it
  dlc-run                `python -m dlc.runtime ARTIFACT --input x.npy` (the device's command)
  dlc run                `dlc run ARTIFACT --input x.npy`
  dlc check (warm/cold)  `dlc check spec/lenet5.arch` with its parser cache filled, and empty

For each case one more process, running the same code under `python -c`, reports the modules it
imported: how many, and whether torch, ml_dtypes, TVM's Python package (`tvm`), `tvm.relax`,
lark and the dlc compiler were among them. The children write bytecode under a temporary
PYTHONPYCACHEPREFIX (as an installed package has its .pyc files); `--no-bytecode` keeps this
environment's PYTHONDONTWRITEBYTECODE instead, which compiles every module from source at every
start. Timings on a shared machine move with its load: run it on a quiet one.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WATCHED = ("torch", "ml_dtypes", "tvm", "tvm.relax", "lark", "dlc.compiler")

# run under `python -c` with argv [CENSUS_FILE, ...]: the case's code, then the modules it imported
CENSUS = """
import json, sys, time
out, argv = sys.argv[1], sys.argv[2:]
phases = {{}}
{code}
json.dump({{"modules": sorted(sys.modules), "phases": phases}}, open(out, "w"))
"""
LOAD_AND_CALL = """
t0 = time.perf_counter()
import numpy as np
from dlc.runtime import load
t1 = time.perf_counter()
model = load(argv[0])
t2 = time.perf_counter()
model(x=np.load(argv[1]))
t3 = time.perf_counter()
phases.update({"import": t1 - t0, "load": t2 - t1, "first call": t3 - t2})
"""
CLI = "from dlc.cli import main\nrc = main(argv)"
RUNTIME_CLI = "from dlc.runtime.__main__ import main\nrc = main(argv)"


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]  # the command timed
    census: str  # the same work as Python code, for the module census
    census_argv: list[str]
    cold_cache: bool = False  # empty the parser cache before each run


def dlc_command() -> list[str]:
    script = Path(sys.executable).with_name("dlc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dlc"]


def cases(art: Path, x: Path) -> list[Case]:
    py, spec = sys.executable, str(ROOT / "spec" / "lenet5.arch")
    run_args = [str(art), "--input", str(x)]
    return [
        Case("import dlc.runtime", [py, "-c", "import dlc.runtime"], "import dlc.runtime", []),
        Case("load + first call", [py, "-c", "import sys, time\nargv, phases = sys.argv[1:], {}\n" + LOAD_AND_CALL,
                                   str(art), str(x)], LOAD_AND_CALL, [str(art), str(x)]),
        Case("dlc-run", [py, "-m", "dlc.runtime", *run_args], RUNTIME_CLI, run_args),
        Case("dlc run", [*dlc_command(), "run", *run_args], CLI, ["run", *run_args]),
        Case("dlc check (warm cache)", [*dlc_command(), "check", spec], CLI, ["check", spec]),
        Case("dlc check (cold cache)", [*dlc_command(), "check", spec], CLI, ["check", spec], cold_cache=True),
    ]


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"startup: `{' '.join(argv[:4])} ...` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def census(case: Case, env: dict[str, str], cwd: Path) -> dict:
    out = cwd / "census.json"
    run_once([sys.executable, "-c", CENSUS.format(code=case.census), str(out), *case.census_argv], env, cwd)
    return json.loads(out.read_text())


def measure(case: Case, runs: int, env: dict[str, str], cwd: Path, cache: Path) -> dict:
    times = []
    for i in range(runs + 1):  # the first is a warm-up (bytecode, page cache, parser cache)
        if case.cold_cache:
            shutil.rmtree(cache, ignore_errors=True)
        elapsed = run_once(case.argv, env, cwd)
        if i:
            times.append(elapsed)
    if case.cold_cache:
        shutil.rmtree(cache, ignore_errors=True)
    seen = census(case, env, cwd)
    modules = set(seen["modules"])
    imported = {name: any(m == name or m.startswith(name + ".") for m in modules) for name in WATCHED}
    return {"case": case.name, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "modules": len(modules), "imported": imported, "phases": seen["phases"]}


def compile_digits(tmp: Path, env: dict[str, str]) -> tuple[Path, Path]:
    art, x = tmp / "digits", tmp / "x.npy"
    proc = subprocess.run([*dlc_command(), "compile", str(ROOT / "spec" / "digits_cnn.arch"), "-o", str(art)],
                          env=env, cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"startup: `dlc compile spec/digits_cnn.arch` failed:\n{proc.stderr[-2000:]}")
    np.save(x, np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32))
    return art, x


def child_env(tmp: Path, bytecode: bool) -> dict[str, str]:
    env = {**os.environ, "DLC_CACHE": str(tmp / "cache")}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def show(result: dict) -> str:
    flags = " ".join(name for name, seen in result["imported"].items() if seen) or "-"
    phases = ", ".join(f"{k} {v:.3f}" for k, v in result["phases"].items())
    line = (f"{result['case']:<24} {result['median_s']:7.3f} s  ({result['min_s']:.3f}-{result['max_s']:.3f})"
            f"  {result['modules']:5d} modules  imports: {flags}")
    return line + (f"\n{'':<26}in-process: {phases} s" if phases else "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed runs per case (default 5)")
    p.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE of this environment")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlc-startup-") as name:
        tmp = Path(name)
        env = child_env(tmp, bytecode=not args.no_bytecode)
        art, x = compile_digits(tmp, env)
        results = [measure(case, args.runs, env, tmp, tmp / "cache") for case in cases(art, x)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"fresh-process wall time, median of {args.runs} ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; bytecode {'off' if args.no_bytecode else 'on'})")
    for result in results:
        print(show(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
