"""Adversarial attacks on the 8x8 digits classifier (`dlc attack`, runtime/attack/): white-box, query-based
black-box and transfer attacks, each against the undefended model and the notes' two defences.

    nice -n 10 python benchmarks/attacks.py [--out DIR] [--runs DIR] [--eps 0.2] [-n N]
                                            [--only fgsm,pgd,fd,fd-group,fd-pca,transfer,artifact,...]
                                            [--targets undefended,adversarial,ensemble]

First the training definitions the chosen rows need, each `dlc train`ed into DIR/runs/<name> unless it
is there already (or, with --runs RUNS, in RUNS/<name>: a finished run, one with its summary.json, is
reused and never written to): digits8 (Digits8 of spec/digits_cnn.arch, the model attacked), digits8_subs
(Digits8Substitutes: 3 models of the same architecture, seeds 1..3, in member1..3/, see
runtime/train/ensembles.py `member_dir`), digits8_mlp (Digits8Mlp of spec/digits_mlp.arch, a two-layer
perceptron), digits8_adv (Digits8Adversarial, FGSM adversarial training) and digits8_ens (Digits8Ensemble:
5 models, passed to `dlc attack` as five --weights, the mean of their probabilities). About 30 s a model on 2 cores.

Then every row below is one `python -m dlc attack spec/digits_cnn.arch --weights ... --method ... --eps EPS
--quiet` per target, on the same images (scikit-learn digits' test split, 270 images, or its first N with
-n), the same eps (Linf, default 0.2 on [0, 1] pixels, the eps Digits8Adversarial trains against) and the default seed, untargeted, cross-entropy:

    fgsm               white-box, one signed-gradient step of eps
    pgd                white-box, random start and 10 steps of 2.5 eps / 10 (Madry et al.)
    fd                 black-box, the full finite-difference gradient (2 d = 128 queries), one FGSM step
    fd-group-K         the same with features shuffled into random groups of K (2 ceil(64 / K) queries)
    fd-pca-N           the same along the first N principal components of the training images (2 N queries)
    fd-pca-20-iter     fd-pca with 20 components, 10 steps (10 estimates: 400 queries)
    transfer-one       one FGSM step on one substitute (Digits8Substitutes member1), the examples sent to
                       the target: one step, like the fd rows, so that the two compare
    transfer-mlp       the same on the MLP (another architecture)
    transfer-ensemble  the same on the mean probability of the 3 substitutes and the MLP
    transfer-ensemble-pgd  PGD (10 steps) on that ensemble: what iterating on substitutes adds
    artifact           fd-pca-20 against the Digits8 artifact that `dlc compile ... --dim H=8 --dim W=8
                       -o DIR/build/digits8` builds (TVM, llvm; answers queries only), Digits8 only

--only takes row names, or fd-group, fd-pca, transfer for their whole families. The targets are
Digits8 (undefended), Digits8Adversarial and Digits8Ensemble (5 weights). Figures (report.json of each
run, DIR/<row>/<target>/; see runtime/attack/report.py):

    success      of the test images the target labels right, the share it labels wrong after the attack
    queries      queries per image the target answered while the examples were made (0 for white-box and
                 transfer; the same for every target, which the table checks)
    mean L2      mean ||x_adv - x||_2 over the images against Digits8 (every attack is bounded by eps in
                 Linf; at eps 0.2 on 64 pixels an all-corners perturbation has L2 1.6)
    wall s       seconds of the row's `dlc attack` runs, all targets together (each includes ~5-8 s of
                 Python, torch and spec start-up; the artifact row's includes `dlc compile`)

Expected shape (Bhagoji et al. 2018 on MNIST): full FD close to white-box FGSM (the same step up to
O(delta^2)), PCA with a few tens of components close behind at a fraction of the queries, success
falling as groups grow, transfer weaker than query-based attacks; all lower against the defences.
The table goes to stdout as Markdown; every figure, the commands' wall seconds and the training's in
DIR/attacks.json. Subprocesses get OMP_NUM_THREADS=2 (and TVM_NUM_THREADS the same) unless set.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "digits_cnn.arch"
MLP_SPEC = ROOT / "spec" / "digits_mlp.arch"
RUNS = {  # run directory name: (spec, training definition, members: 0 for a single run)
    "digits8": (SPEC, "Digits8", 0),
    "digits8_subs": (SPEC, "Digits8Substitutes", 3),
    "digits8_mlp": (MLP_SPEC, "Digits8Mlp", 0),
    "digits8_adv": (SPEC, "Digits8Adversarial", 0),
    "digits8_ens": (SPEC, "Digits8Ensemble", 5),
}
TARGETS = {  # key: (column title, run directory)
    "undefended": ("Digits8", "digits8"),
    "adversarial": ("Digits8Adversarial", "digits8_adv"),
    "ensemble": ("Digits8Ensemble (5)", "digits8_ens"),
}
FAMILIES = ("fd-group", "fd-pca", "transfer")
GROUP_SIZES = (2, 4, 8, 16)
COMPONENTS = (5, 10, 20, 40)


def rows() -> list[tuple[str, str, list[str], tuple[str, ...]]]:
    """(key, label, `dlc attack` arguments, runs its substitutes need); {sub} / {mlp} are checkpoints."""
    out = [("fgsm", "white-box FGSM", ["--method", "fgsm"], ()),
           ("pgd", "white-box PGD, 10 steps", ["--method", "pgd"], ()),
           ("fd", "FD, every feature", ["--method", "fd"], ())]
    out += [(f"fd-group-{k}", f"FD, groups of {k}", ["--method", "fd-group", "--group-size", str(k)], ())
            for k in GROUP_SIZES]
    out += [(f"fd-pca-{n}", f"FD, PCA {n}", ["--method", "fd-pca", "--components", str(n)], ()) for n in COMPONENTS]
    out += [("fd-pca-20-iter", "FD, PCA 20, 10 steps", ["--method", "fd-pca", "--components", "20", "--steps", "10"],
             ()),
            ("transfer-one", "transfer (FGSM) from 1 substitute", ["--method", "transfer", "--substitute", "{sub1}",
                                                                    "--via", "fgsm"], ("digits8_subs",)),
            ("transfer-mlp", "transfer (FGSM) from the MLP", ["--method", "transfer", "--substitute", "{mlp}",
                                                               "--via", "fgsm"], ("digits8_mlp",)),
            ("transfer-ensemble", "transfer (FGSM) from 3 substitutes + MLP",
             ["--method", "transfer", "--substitute", "{sub1}", "--substitute", "{sub2}", "--substitute", "{sub3}",
              "--substitute", "{mlp}", "--via", "fgsm"], ("digits8_subs", "digits8_mlp")),
            ("transfer-ensemble-pgd", "transfer (PGD, 10 steps) from 3 substitutes + MLP",
             ["--method", "transfer", "--substitute", "{sub1}", "--substitute", "{sub2}", "--substitute", "{sub3}",
              "--substitute", "{mlp}", "--via", "pgd"], ("digits8_subs", "digits8_mlp"))]
    return out


ARTIFACT_ARGS = ["--method", "fd-pca", "--components", "20"]  # the same settings as the fd-pca-20 row
ARTIFACT_TWIN = "fd-pca-20"


def selected(key: str, only: list[str] | None) -> bool:
    return only is None or any(key == o or (o in FAMILIES and key.startswith(o + "-")) for o in only)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("OMP_NUM_THREADS", "2")
    e.setdefault("TVM_NUM_THREADS", e["OMP_NUM_THREADS"])
    return e


def dlc(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """`python -m dlc ARGS` from cwd (not the repository root, whose dlc/ would shadow the installed
    package's dlc.compiler); its output captured, shown on failure."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dlc", *args], cwd=cwd, env=env(), capture_output=True, text=True)
    return time.perf_counter() - start, done


def member_dir(run: Path, i: int) -> Path:
    """runtime/train/ensembles.py's member_dir: member i (0-based) of a `config ensemble` run."""
    return run / f"member{i + 1}"


def checkpoints(run: Path, members: int) -> list[Path]:
    return [run / "best.safetensors"] if members == 0 else \
        [member_dir(run, i) / "best.safetensors" for i in range(members)]


def finished(run: Path, members: int) -> bool:
    return (run / "summary.json").is_file() and all(p.is_file() for p in checkpoints(run, members))


def ensure_run(name: str, out: Path, reuse: Path | None, log: dict) -> Path:
    """The run directory of RUNS[name]: reused from --runs or DIR/runs when finished, else trained in DIR/runs."""
    spec, train, members = RUNS[name]
    for base in ([reuse] if reuse else []) + [out / "runs"]:
        if finished(base / name, members):
            log[name] = {"train": train, "run": str(base / name), "seconds": None}
            return base / name
    run = out / "runs" / name
    shutil.rmtree(run, ignore_errors=True)  # an unfinished run of ours: start it again
    print(f"training {train} -> {run}", file=sys.stderr, flush=True)
    seconds, done = dlc(["train", str(spec), "--train", train, "-o", str(run), "--quiet"], cwd=out)
    if done.returncode != 0 or not finished(run, members):
        sys.exit(f"`dlc train --train {train}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    log[name] = {"train": train, "run": str(run), "seconds": round(seconds, 1)}
    return run


def attack(target: list[str], args: list[str], eps: float, examples: int | None, out: Path, cwd: Path) -> dict:
    """One `dlc attack`: its report's figures and wall seconds, or its error."""
    cmd = ["attack", *target, *args, "--eps", f"{eps:g}", "-o", str(out), "--quiet"]
    if examples is not None:
        cmd += ["-n", str(examples)]
    (out / "report.json").unlink(missing_ok=True)
    seconds, done = dlc(cmd, cwd=cwd)
    result = {"command": "dlc " + " ".join(cmd), "seconds": round(seconds, 1)}
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        result["error"] = f"exit {done.returncode}: " + (message[-1] if message else "")
        print(f"  FAILED: dlc {' '.join(cmd)}\n{done.stdout}{done.stderr}", file=sys.stderr, flush=True)
        return result
    result["figures"] = json.loads((out / "report.json").read_text())["figures"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dlc-attacks"))
    ap.add_argument("--runs", type=Path, help="reuse the finished runs of this directory (digits8, digits8_subs, "
                    "digits8_mlp, digits8_adv, digits8_ens); what is missing is trained in OUT/runs")
    ap.add_argument("--eps", type=float, default=0.2, help="Linf bound of every attack (default 0.2)")
    ap.add_argument("-n", "--examples", type=int, help="attack the test split's first N images (default all 270)")
    ap.add_argument("--only", help="comma-separated rows (or fd-group, fd-pca, transfer, artifact); default all")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated of " + ", ".join(TARGETS))
    args = ap.parse_args()
    started = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    only = [o for o in args.only.split(",") if o] if args.only else None
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    keys = [r[0] for r in rows()] + ["artifact"]
    unknown += [o for o in only or [] if o not in keys and o not in FAMILIES]
    if unknown:
        ap.error(f"unknown {', '.join(unknown)}: rows are {', '.join(keys)} (or {', '.join(FAMILIES)}); "
                 f"targets {', '.join(TARGETS)}")
    chosen = [r for r in rows() if selected(r[0], only)]
    with_artifact = selected("artifact", only)

    needed = {TARGETS[t][1] for t in targets} | {n for r in chosen for n in r[3]}
    if with_artifact:
        needed.add("digits8")
    trained: dict[str, dict] = {}
    runs = {name: ensure_run(name, out, args.runs.resolve() if args.runs else None, trained)
            for name in RUNS if name in needed}
    subs = {}
    if "digits8_subs" in runs:
        subs.update({f"sub{i + 1}": f"{SPEC}={p}" for i, p in enumerate(checkpoints(runs["digits8_subs"], 3))})
    if "digits8_mlp" in runs:
        subs["mlp"] = f"{MLP_SPEC}={runs['digits8_mlp'] / 'best.safetensors'}"
    target_args = {}
    for t in targets:
        name = TARGETS[t][1]
        weights = checkpoints(runs[name], RUNS[name][2])
        target_args[t] = [str(SPEC)] + [a for p in weights for a in ("--weights", str(p))]

    results: dict[str, dict] = {}
    for key, label, extra, _ in chosen:
        extra = [a.format(**subs) for a in extra]
        results[key] = {"label": label, "args": extra, "targets": {}}
        for t in targets:
            print(f"{key} vs {TARGETS[t][0]}", file=sys.stderr, flush=True)
            results[key]["targets"][t] = attack(target_args[t], extra, args.eps, args.examples, out / key / t, out)

    artifact: dict = {}
    if with_artifact:
        build = out / "build" / "digits8"
        shutil.rmtree(build, ignore_errors=True)
        print(f"compiling Digits8 -> {build}", file=sys.stderr, flush=True)
        seconds, done = dlc(["compile", str(SPEC), "--weights", str(runs["digits8"] / "best.safetensors"),
                             "--dim", "H=8", "--dim", "W=8", "-o", str(build)], cwd=out)
        artifact = {"label": "FD, PCA 20 vs the TVM artifact", "args": ARTIFACT_ARGS, "compile_seconds":
                    round(seconds, 1), "artifact": str(build), "targets": {}}
        if done.returncode != 0:
            artifact["targets"]["undefended"] = {"error": f"dlc compile failed ({done.returncode})"}
            print(f"  FAILED: dlc compile\n{done.stdout}{done.stderr}", file=sys.stderr, flush=True)
        else:
            print("artifact vs Digits8", file=sys.stderr, flush=True)
            artifact["targets"]["undefended"] = attack([str(build)], ARTIFACT_ARGS, args.eps, args.examples,
                                                       out / "artifact" / "undefended", out)
        twin = results.get(ARTIFACT_TWIN, {}).get("targets", {}).get("undefended", {}).get("figures")
        mine = artifact["targets"]["undefended"].get("figures")
        if twin and mine:
            artifact["pytorch_success_rate"] = twin["success_rate"]
            artifact["equal_success"] = mine["success_rate"] == twin["success_rate"]
            artifact["same_adversarial_predictions"] = _same_predictions(out / ARTIFACT_TWIN / "undefended",
                                                                         out / "artifact" / "undefended")
        results["artifact"] = artifact

    total = time.perf_counter() - started
    record = {"spec": str(SPEC), "eps": args.eps, "norm": "linf", "examples": args.examples or "all (270)",
              "targets": {t: TARGETS[t][0] for t in targets}, "runs": trained, "rows": results,
              "total_seconds": round(total, 1)}
    json_path = out / "attacks.json"
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    print_table(results, targets, args, trained, total, json_path)


def _same_predictions(a: Path, b: Path) -> bool | None:
    import numpy as np

    try:
        x, y = np.load(a / "adversarial.npz"), np.load(b / "adversarial.npz")
    except OSError:
        return None
    return bool(np.array_equal(x["adv_pred"], y["adv_pred"]))


def print_table(results: dict, targets: list[str], args, trained: dict, total: float, json_path: Path) -> None:
    clean = {}
    for r in results.values():
        for t, res in r["targets"].items():
            if "figures" in res and t not in clean:
                clean[t] = res["figures"]
    examples = next((f["examples"] for f in clean.values()), args.examples)
    print(f"\ndigits 8x8 test split, {examples} images, eps {args.eps:g} (Linf), untargeted; clean accuracy: "
          + ", ".join(f"{TARGETS[t][0]} {clean[t]['clean_accuracy']:.4f}" for t in targets if t in clean))
    reused = [n for n, v in trained.items() if v["seconds"] is None]
    fresh = [f"{v['train']} {v['seconds']:.0f} s" for v in trained.values() if v["seconds"] is not None]
    print(f"runs: {'reused ' + ', '.join(reused) if reused else ''}{'; ' if reused and fresh else ''}"
          f"{'trained ' + ', '.join(fresh) if fresh else ''}\n")
    head = " | ".join(f"{TARGETS[t][0]} success" for t in targets)
    print(f"| attack | queries / image | {head} | mean L2 | wall s |")
    print("|---|---:|" + "---:|" * len(targets) + "---:|---:|")
    for key, r in results.items():
        cells, queries = [], set()
        for t in targets:
            res = r["targets"].get(t)
            if res is None:
                cells.append("-")
            elif "figures" not in res:
                cells.append("error")
            else:
                cells.append(f"{res['figures']['success_rate']:.3f}")
                queries.add(round(res["figures"]["queries_per_example"], 1))
        q = "/".join(f"{v:g}" for v in sorted(queries)) if queries else "-"
        first = r["targets"].get("undefended", {}).get("figures")
        l2 = f"{first['l2_mean']:.3f}" if first else "-"
        wall = sum(res.get("seconds", 0) for res in r["targets"].values()) + r.get("compile_seconds", 0)
        print(f"| {r['label']} | {q} | {' | '.join(cells)} | {l2} | {wall:.0f} |")
    a = results.get("artifact")
    if a and "pytorch_success_rate" in a:
        mine = a["targets"]["undefended"]["figures"]["success_rate"]
        print(f"\nartifact (TVM) fd-pca 20: success {mine:.4f}, PyTorch {a['pytorch_success_rate']:.4f}: "
              f"{'equal' if a['equal_success'] else 'DIFFERENT'}; adversarial predictions "
              f"{'identical' if a['same_adversarial_predictions'] else 'differ'} "
              f"(compile {a['compile_seconds']:.0f} s, included in its wall s)")
    errors = [(k, t, res["error"]) for k, r in results.items() for t, res in r["targets"].items() if "error" in res]
    for k, t, e in errors:
        print(f"\n{k} vs {TARGETS[t][0]}: {e}")
    print(f"\ntotal {total:.0f} s (figures in {json_path})")


if __name__ == "__main__":
    main()
