"""Ensembles (runtime/train/ensembles.py): the cyclic schedule and its snapshots, the weight averages
(EMA, SWA) kept beside the model and resumed exactly, k independent members; the averaged-prediction
figures checked against a hand-made average of the members' softmax outputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dlc.compiler.pipeline import compile_file
from dlc.runtime.train import data as datasets
from dlc.runtime.train.ensembles import cycle_bounds, snapshot_cycle
from dlc.runtime.train.loop import Options, train
from dlc.runtime.train.modules import build_steps, make_optimizer, make_schedule

HEAD = """
network Small {
  input x: f32[B, 1, 8, 8]
  output logits = x -> conv2d(4, 3, padding=1, bias=false) -> batchnorm2d -> relu -> flatten
                    -> dropout(0.1) -> fc: linear(10)
}
"""


def objective(name: str, settings: str) -> str:
    return f"""
train {name} {{
  data digits(size=8)
  model net = Small()
  {settings}
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  output loss = (logits, label) -> cross_entropy
  output accuracy = (logits, label) -> accuracy
}}
"""


SPEC = HEAD + objective("Snap", 'config batch=64, epochs=1, seed=0, best="accuracy"\n'
                                "  optimizer sgd(lr=0.2, momentum=0.9)\n  schedule cyclic(cycles=3)") \
    + objective("Ema", 'config batch=64, epochs=1, seed=0, best="accuracy", average=0.9\n  optimizer adam(lr=1e-2)') \
    + objective("Swa", 'config batch=64, epochs=1, seed=0, best="accuracy", average="swa", average_from=1\n'
                       "  optimizer adam(lr=1e-2)") \
    + objective("Members", 'config batch=64, epochs=1, seed=3, best="accuracy", ensemble=2\n  optimizer adam(lr=1e-2)')


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on 2 shared cores: threads only contend
    spec = tmp_path_factory.mktemp("spec") / "ens.arch"
    spec.write_text(SPEC)
    result = compile_file(spec)
    assert result.ok, result.diagnostics
    yield result
    torch.set_num_threads(threads)


BUILT: dict[str, tuple] = {}


def held_out(compiled, name):
    """The test split and a model of definition `name` (built once per definition)."""
    if name not in BUILT:
        test = datasets.load("digits", {"size": 8, "binarize": False, "target": "digit"}).splits["test"]
        _, models = build_steps(compiled, compiled.trains[name])
        BUILT[name] = test, models["net"].eval()
    return BUILT[name]


def run(compiled, name, out, **kw):
    return train(compiled, compiled.trains[name], Options(out, quiet=True, **kw))


def manual_figures(compiled, name, weight_files):
    """Accuracy and NLL of the mean softmax of the given weights on the test split, by hand in numpy."""
    test, net = held_out(compiled, name)
    probs = []
    for path in weight_files:
        net.load_state_dict(load_file(str(path)), strict=False)
        with torch.no_grad():
            logits = net(torch.from_numpy(test["image"])).double().numpy()
        e = np.exp(logits - logits.max(1, keepdims=True))
        probs.append(e / e.sum(1, keepdims=True))
    mean = np.mean(probs, axis=0)
    return float((mean.argmax(1) == test["label"]).mean()), float(-np.log(mean[np.arange(len(mean)), test["label"]]).mean())


def test_cyclic_lr_per_step_follows_huang_et_al(compiled):
    opt_plan = compiled.trains["Snap"].steps[0].optimizer
    param = torch.nn.Parameter(torch.zeros(1))
    total, cycles = 30, 3  # M divides T: the paper's alpha(t) = a0/2 (cos(pi mod(t-1, T/M) / (T/M)) + 1)
    opt = torch.optim.SGD([param], lr=0.2)
    sched = make_schedule(opt_plan, opt, 10, total)
    got = []
    for _ in range(total):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = [0.2 / 2 * (math.cos(math.pi * ((t - 1) % (total // cycles)) / (total // cycles)) + 1)
            for t in range(1, total + 1)]
    assert np.allclose(got, want, rtol=0, atol=1e-12)
    assert got[10] == pytest.approx(0.2) and got[9] < 0.01  # a restart after each cycle
    assert cycle_bounds(19, 3) == [0, 6, 12, 19]  # M not dividing T: still M cycles
    assert [s for s in range(1, 20) if snapshot_cycle(s, 19, 3)] == [6, 12, 19]


def test_one_snapshot_per_cycle_and_their_averaged_predictions(compiled, tmp_path):
    run(compiled, "Snap", tmp_path)
    snaps = sorted((tmp_path / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snaps] == ["cycle01.safetensors", "cycle02.safetensors", "cycle03.safetensors"]
    last, final = load_file(str(tmp_path / "last.safetensors")), load_file(str(snaps[-1]))
    assert all(torch.equal(last[k], final[k]) for k in last)  # the last cycle ends with the run
    first = load_file(str(snaps[0]))
    assert not torch.equal(first["fc.weight"], final["fc.weight"])
    found = json.loads((tmp_path / "summary.json").read_text())["ensembles"]
    accuracy, nll = manual_figures(compiled, "Snap", snaps)
    assert found["kind"] == "snapshots" and len(found["members"]) == 3
    assert found["ensemble"]["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert found["ensemble"]["nll"] == pytest.approx(nll, rel=1e-6)
    assert found["members"][0]["accuracy"] == pytest.approx(manual_figures(compiled, "Snap", snaps[:1])[0], abs=1e-9)


def test_ema_equals_a_hand_computed_average_and_resumes_exactly(compiled, tmp_path):
    torch.manual_seed(0)  # the loop's seeding: the initial weights
    _, models = build_steps(compiled, compiled.trains["Ema"])
    names = [n for n, _ in models["net"].named_parameters()]
    ema = {n: p.detach().double().clone() for n, p in models["net"].named_parameters()}
    for k in (1, 2, 3):  # the same seeded run stopped after k steps: its weights after step k
        run(compiled, "Ema", tmp_path / f"k{k}", max_steps=k)
        w = load_file(str(tmp_path / f"k{k}" / "last.safetensors"))
        ema = {n: 0.9 * ema[n] + 0.1 * w[n].double() for n in names}
    avg = load_file(str(tmp_path / "k3" / "average.safetensors"))
    for n in names:
        assert torch.allclose(avg[n].double(), ema[n], atol=1e-6), n
    assert not torch.allclose(avg["fc.weight"], w["fc.weight"])

    run(compiled, "Ema", tmp_path / "whole")
    run(compiled, "Ema", tmp_path / "k3", resume=True)  # the run stopped after 3 steps goes on to the end
    a, b = (load_file(str(tmp_path / r / "average.safetensors")) for r in ("whole", "k3"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert all("avg.accuracy" in r["val"] and "avg.loss" in r["val"] for r in epochs)
    assert epochs[-1]["val"]["avg.accuracy"] != epochs[-1]["val"]["accuracy"]
    found = json.loads((tmp_path / "whole" / "summary.json").read_text())["ensembles"]
    assert found["ensemble"]["accuracy"] == pytest.approx(
        manual_figures(compiled, "Ema", [tmp_path / "whole" / "average.safetensors"])[0], abs=1e-9)


def test_swa_is_the_uniform_average_of_the_steps(compiled, tmp_path):
    weights = []
    for k in (1, 2):
        run(compiled, "Swa", tmp_path / f"k{k}", max_steps=k)
        weights.append(load_file(str(tmp_path / f"k{k}" / "last.safetensors")))
    avg = load_file(str(tmp_path / "k2" / "average.safetensors"))
    for name in ("fc.weight", "fc.bias"):
        assert torch.allclose(avg[name], (weights[0][name] + weights[1][name]) / 2, atol=1e-7)
    stats = torch.load(tmp_path / "k2" / "last.state.pt", weights_only=True)["ensembles"]["average"]
    assert stats["count"] == 2


def test_k_members_are_trained_with_their_seeds_and_averaged(compiled, tmp_path):
    result = run(compiled, "Members", tmp_path)
    best = [tmp_path / f"member{i}" / "best.safetensors" for i in (1, 2)]
    w1, w2 = (load_file(str(p)) for p in best)
    assert not torch.equal(w1["fc.weight"], w2["fc.weight"])  # seeds 3 and 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    accuracy, nll = manual_figures(compiled, "Members", best)
    assert summary["ensembles"]["seeds"] == [3, 4]
    assert torch.load(tmp_path / "last.state.pt", weights_only=True)["members_done"] == [0, 1]  # for --resume
    assert summary["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-9) == result.test["accuracy"]
    assert summary["test"]["nll"] == pytest.approx(nll, rel=1e-6)
    one = manual_figures(compiled, "Members", best[1:])
    assert summary["ensembles"]["members"][1]["accuracy"] == pytest.approx(one[0], abs=1e-9)
