"""The TVM backend: targets, import through the ONNX emitter, Winograd legalization, tuning, artifacts.

    targets.py   named targets (`llvm`, `cuda`, `aarch64`) resolved to TVM target JSON
    fold.py      the inference rewrite TVM builds from (batch norm folded into convs)
    build.py     ONNX -> Relax, prepare (legalize, lift weight-only work, fuse), lower, build
    winograd.py  3x3 stride-1 convs as Winograd on CPU targets
    tune.py      MetaSchedule with a persistent database and a trial ledger
    artifact.py  the artifact directory (manifest, library, weights) the runtime loads

Nothing is imported here: `targets` must stay cheap for the CLI, the rest loads TVM and onnx.
"""
