"""Pretrained weights in: real torchvision and Hugging Face transformers models, built with seeded
random weights (nothing is downloaded), load through the shipped key maps (compiler/keymaps/)
strictly into the zoo's networks and compute the same outputs in eval mode; what does not fit is
a located diagnostic that names the source keys.

torchvision's PyPI wheel is built against another torch than the CPU one here: its C ops fail to
register, and `import torchvision` fails in its fake-kernel registrations. The model definitions
are pure Python, so the `torchvision` fixture imports it with `torch.library.register_fake`
replaced by a no-op decorator, restored afterwards. transformers imports torchvision when it is
installed, so it is imported after it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import dlc
from conftest import ROOT
from dlc.compiler.checkpoint import CheckpointError, fit_checkpoint, load_weights, module_state_dict
from dlc.compiler.keymaps import find_keymap
from dlc.compiler.pipeline import compile_file

GPT2_SIZES = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                  activation_function="gelu_new", layer_norm_epsilon=1e-5)  # spec/gpt2.arch's defaults
BERT_SIZES = dict(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, hidden_size=768,
                  num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                  layer_norm_eps=1e-12)  # spec/bert.arch's defaults


@pytest.fixture(scope="module")
def torchvision():
    real = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision
    finally:
        torch.library.register_fake = real
    return torchvision


@pytest.fixture(scope="module")
def transformers(torchvision):
    import transformers

    return transformers


def _numpy(state) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in state.items()}


def _perturb(model, seed: int):
    """Seeded noise on every parameter: biases and LayerNorm weights that start at 0 and 1 would
    hide a bias split in the wrong order or a LayerNorm weight loaded into a bias."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model


def _batchnorm_statistics(model, seed: int):
    """Running statistics as after training (fresh ones are 0 and 1, which would hide a mix-up)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            m.num_batches_tracked.fill_(7)
    return model


def _zoo_module(spec: str, graph, weights):
    """The emitted PyTorch module of `spec` with `weights`, loaded strictly (eval mode)."""
    module = dlc.torch_module(f"spec/{spec}.arch").eval()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in module_state_dict(graph, weights).items()}, strict=True)
    return module


def _dlc(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "dlc", *args], capture_output=True, text=True, cwd=cwd)


# --- torchvision -----------------------------------------------------------------------------

TORCHVISION = [("resnet18", "ResNet18", {}), ("resnet50", "ResNet50", {}), ("vgg16", "VGG16", {}),
               ("alexnet", "AlexNet", {}),
               ("googlenet", "GoogLeNet", {"aux_logits": False, "transform_input": False, "init_weights": True}),
               ("densenet121", "DenseNet121", {}),  # fails until spec/std/dense.arch names denselayer1, ...
               ("mobilenet_v2", "MobileNetV2", {})]


def _torchvision_model(torchvision, spec: str, kwargs: dict, seed: int = 0):
    torch.manual_seed(seed)
    return _batchnorm_statistics(getattr(torchvision.models, spec)(**kwargs), seed).eval()


@pytest.mark.parametrize(("spec", "network", "kwargs"), TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_torchvision_state_dicts_load_strictly_and_compute_the_same(torchvision, spec, network, kwargs):
    reference = _torchvision_model(torchvision, spec, kwargs)
    graph = compile_file(f"spec/{spec}.arch").graphs[network]
    weights = fit_checkpoint(graph, _numpy(reference.state_dict()), spec, find_keymap("torchvision", network))
    assert sorted(weights) == sorted(reference.state_dict())
    module = _zoo_module(spec, graph, weights)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(x), atol=1e-5, rtol=1e-5)


def test_googlenets_published_layout_with_aux_heads_loads(torchvision):
    """torchvision's GoogLeNet checkpoint holds `aux1.*` and `aux2.*`; the map drops them."""
    reference = _torchvision_model(torchvision, "googlenet", {"aux_logits": True, "transform_input": False,
                                                              "init_weights": True})
    state = _numpy(reference.state_dict())
    assert any(k.startswith("aux1.") for k in state) and any(k.startswith("aux2.") for k in state)
    graph = compile_file("spec/googlenet.arch").graphs["GoogLeNet"]
    module = _zoo_module("googlenet", graph, fit_checkpoint(graph, state, "googlenet", find_keymap("torchvision", "GoogLeNet")))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # in eval mode torchvision's GoogLeNet returns the main head's logits only
        torch.testing.assert_close(module(x), reference(x), atol=1e-5, rtol=1e-5)


def test_checkpoints_older_than_num_batches_tracked_load(torchvision):
    """torchvision's first checkpoints have no `num_batches_tracked`: 0, as PyTorch's BatchNorm sets it."""
    reference = _torchvision_model(torchvision, "resnet18", {})
    state = {k: v for k, v in _numpy(reference.state_dict()).items() if not k.endswith("num_batches_tracked")}
    graph = compile_file("spec/resnet18.arch").graphs["ResNet18"]
    weights = fit_checkpoint(graph, state, "resnet18", find_keymap("torchvision", "ResNet18"))
    counters = [k for k in weights if k.endswith("num_batches_tracked")]
    assert len(counters) == 20 and all(weights[k].dtype == np.int64 and weights[k] == 0 for k in counters)
    module = _zoo_module("resnet18", graph, weights)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(x), atol=1e-5, rtol=1e-5)


def test_densenets_first_published_names_become_todays(torchvision):
    """`denselayer1.norm.1.weight` (checkpoints before torchvision 0.3) -> `denselayer1.norm1.weight`,
    with torchvision's own pattern."""
    state = _numpy(torchvision.models.densenet121().state_dict())
    legacy = {re.sub(r"(denselayer\d+)\.(norm|conv)([12])\.", r"\1.\2.\3.", k): v for k, v in state.items()
              if not k.endswith("num_batches_tracked")}  # which those checkpoints predate too
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    mapped = find_keymap("torchvision", "DenseNet121").apply(legacy, {k: v.shape for k, v in state.items()})
    assert sorted(mapped.arrays) == sorted(state)
    assert all(mapped.arrays[k] is state[k] for k in state if not k.endswith("num_batches_tracked"))
    assert mapped.origin["features.denseblock1.denselayer1.norm1.weight"] == \
        "from `features.denseblock1.denselayer1.norm.1.weight`"


def test_export_onnx_with_a_torchvision_checkpoint(torchvision, tmp_path):
    import onnxruntime as ort
    from safetensors.torch import save_file as save_torch

    reference = _torchvision_model(torchvision, "resnet18", {})
    save_torch(reference.state_dict(), str(tmp_path / "resnet18.safetensors"))
    out = tmp_path / "resnet18.onnx"
    proc = _dlc("export", "onnx", "spec/resnet18.arch", "--weights", str(tmp_path / "resnet18.safetensors"),
                "--weights-from", "torchvision", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    got = ort.InferenceSession(str(out)).run(["logits"], {"x": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, reference(x).numpy(), atol=1e-4, rtol=1e-4)


# --- Hugging Face ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_gpt2(transformers):
    torch.manual_seed(0)
    return _perturb(transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT2_SIZES)), 10).eval()


@pytest.fixture(scope="module")
def hf_bert(transformers):
    """BertForPreTraining: its `.bert` is a BertModel with pooler, its state_dict the layout of the
    published pre-training checkpoints (`bert.` prefix, `cls.*` heads)."""
    torch.manual_seed(0)
    return _perturb(transformers.BertForPreTraining(transformers.BertConfig(**BERT_SIZES)), 11).eval()


@pytest.fixture(scope="module")
def gpt2_graph():
    return compile_file("spec/gpt2.arch").graphs["GPT2"]


@pytest.fixture(scope="module")
def bert_graph():
    return compile_file("spec/bert.arch").graphs["Bert"]


def _assert_gpt2_logits_equal(module, hf_gpt2):
    idx = torch.randint(0, GPT2_SIZES["vocab_size"], (2, 16), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(module(idx), hf_gpt2(idx).logits, atol=1e-5, rtol=0)


def test_gpt2_logits_equal_hugging_faces(hf_gpt2, gpt2_graph):
    state = _numpy(hf_gpt2.state_dict())
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (768, 2304)  # Conv1D: (in, out), q|k|v
    weights = fit_checkpoint(gpt2_graph, state, "gpt2", find_keymap("huggingface", "GPT2"))
    np.testing.assert_array_equal(weights["h.3.attn.k_proj.weight"],
                                  state["transformer.h.3.attn.c_attn.weight"][:, 768:1536].T)
    _assert_gpt2_logits_equal(_zoo_module("gpt2", gpt2_graph, weights), hf_gpt2)


def test_convert_weights_reads_an_older_gpt2_pickle(hf_gpt2, gpt2_graph, tmp_path):
    """GPT2Model's keys (no `transformer.`, no tied lm_head) with the causal-mask buffers that older
    transformers saved, as a torch.save file: read only with the explicit --torch-load."""
    state = {k.removeprefix("transformer."): v for k, v in hf_gpt2.state_dict().items() if k != "lm_head.weight"}
    for i in range(GPT2_SIZES["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1024, 1024, dtype=torch.bool)).view(1, 1, 1024, 1024)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, tmp_path / "pytorch_model.bin")
    out = tmp_path / "gpt2.safetensors"

    refused = _dlc("convert-weights", "spec/gpt2.arch", str(tmp_path / "pytorch_model.bin"), "--from", "huggingface",
                   "-o", str(out))
    assert refused.returncode == 1 and "error[E0107]" in refused.stderr and "--torch-load" in refused.stderr
    assert "Traceback" not in refused.stderr and not out.exists()

    proc = _dlc("convert-weights", "spec/gpt2.arch", str(tmp_path / "pytorch_model.bin"), "--from", "huggingface",
                "--torch-load", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    weights = load_file(str(out))
    assert sorted(weights) == sorted(w.name for w in gpt2_graph.weights)  # a dlc checkpoint: --weights as it is
    _assert_gpt2_logits_equal(_zoo_module("gpt2", gpt2_graph, fit_checkpoint(gpt2_graph, weights)), hf_gpt2)


def test_a_tied_head_that_differs_from_the_embedding_is_refused(hf_gpt2, gpt2_graph):
    state = _numpy(hf_gpt2.state_dict())
    state["lm_head.weight"] = state["lm_head.weight"] + 1
    with pytest.raises(CheckpointError) as err:
        fit_checkpoint(gpt2_graph, state, "gpt2", find_keymap("huggingface", "GPT2"))
    assert err.value.diag.code == "E0405"
    assert err.value.diag.notes == ("key `lm_head.weight` differs from `wte.weight` (from `transformer.wte.weight`), "
                                    "which the spec ties it to (`tie=`)",)


def test_a_gpt2_of_another_size_is_refused_with_the_source_keys(transformers, tmp_path):
    torch.manual_seed(0)
    small = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=64,
                                                                 n_layer=1, n_head=2))
    state = {k: v for k, v in _numpy(small.state_dict()).items() if k != "lm_head.weight"}
    state["transformer.h.0.attn.c_attn.bias"] = np.zeros(190, np.float32)  # 190 is no multiple of 3
    save_file(state, str(tmp_path / "small.safetensors"))
    out = tmp_path / "gpt2.onnx"
    proc = _dlc("export", "onnx", "spec/gpt2.arch", "--weights", str(tmp_path / "small.safetensors"),
                "--weights-from", "huggingface", "-o", str(out))
    assert proc.returncode == 1 and not out.exists() and "Traceback" not in proc.stderr
    err = proc.stderr
    assert f"error[E0405]: checkpoint `{tmp_path / 'small.safetensors'}` does not fit `GPT2` after the key map " \
           "`huggingface-gpt2`" in err
    assert "note: `transformer.h.0.attn.c_attn.bias` has shape [190]: dim 0 does not split into 3 equal parts" in err
    assert ("note: key `h.0.attn.q_proj.weight` (from `transformer.h.0.attn.c_attn.weight`, transposed, part 1 of 3 "
            "along dim 0) has shape [64, 64], the spec needs [768, 768]") in err
    assert "note: key `wte.weight` (from `transformer.wte.weight`) has shape [100, 64], the spec needs [50257, 768]" in err
    assert "note: missing key `h.0.attn.q_proj.bias` (expected shape [768])" in err
    assert "note: missing key `h.11.mlp.c_proj.bias` (expected shape [768])" in err
    assert "spec/gpt2.arch:" in err  # the network's definition, as a secondary label


def _bert_inputs():
    gen = torch.Generator().manual_seed(6)
    ids = torch.randint(0, BERT_SIZES["vocab_size"], (2, 16), generator=gen)
    types = torch.cat([torch.zeros(2, 9, dtype=torch.long), torch.ones(2, 7, dtype=torch.long)], dim=1)
    return ids, types


def test_bert_outputs_equal_hugging_faces(hf_bert, bert_graph):
    weights = fit_checkpoint(bert_graph, _numpy(hf_bert.bert.state_dict()), "bert", find_keymap("huggingface", "Bert"))
    module = _zoo_module("bert", bert_graph, weights)
    ids, types = _bert_inputs()
    with torch.no_grad():
        last, pooled = module(ids, types)
        expected = hf_bert.bert(input_ids=ids, token_type_ids=types)
    torch.testing.assert_close(last, expected.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(pooled, expected.pooler_output, atol=1e-5, rtol=0)


def test_a_bert_pretraining_checkpoint_loads_as_its_encoder(hf_bert, bert_graph, tmp_path):
    """The published layout: `bert.` prefix, the `cls.*` pre-training heads, LayerNorm gamma/beta
    (checkpoints converted from TensorFlow) and the position_ids buffer; read from a safetensors file."""
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in _numpy(hf_bert.state_dict()).items()}
    state["bert.embeddings.position_ids"] = np.arange(512, dtype=np.int64)[None]
    assert any(k.startswith("cls.predictions.") for k in state)
    save_file(state, str(tmp_path / "bert.safetensors"))
    weights = load_weights(bert_graph, tmp_path / "bert.safetensors", "huggingface")
    encoder = fit_checkpoint(bert_graph, _numpy(hf_bert.bert.state_dict()), "bert", find_keymap("huggingface-bert", "Bert"))
    assert sorted(weights) == sorted(encoder)
    assert all(np.array_equal(weights[k], encoder[k]) for k in encoder)


# --- key maps by name and by path -------------------------------------------------------------

def _lenet_checkpoint(tmp_path):
    """LeNet5's weights under 0-based names (`conv0`, `fc0`, ...), and the module they came from."""
    torch.manual_seed(2)
    net = dlc.torch_module("spec/lenet5.arch").eval()
    state = {re.sub(r"^(conv|fc)(\d)", lambda m: f"{m[1]}{int(m[2]) - 1}", k): v for k, v in _numpy(net.state_dict()).items()}
    assert sorted(state) == ["conv0.bias", "conv0.weight", "conv1.bias", "conv1.weight", "fc0.bias", "fc0.weight",
                             "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    save_file(state, str(tmp_path / "lenet.safetensors"))
    (tmp_path / "lenet.toml").write_text("# 0-based layer numbers\n[[rename]]\n"
                                         "from = '(conv|fc)(\\d)\\.(weight|bias)'\nto = '{1}{2+1}.{3}'\n")
    return net


def test_a_users_key_map_with_an_index_shift(tmp_path):
    import onnxruntime as ort

    net = _lenet_checkpoint(tmp_path)
    out = tmp_path / "lenet.onnx"
    proc = _dlc("export", "onnx", "spec/lenet5.arch", "--weights", str(tmp_path / "lenet.safetensors"),
                "--weights-from", str(tmp_path / "lenet.toml"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ort.InferenceSession(str(out)).run(["logits"], {"x": x})[0],
                                   net(torch.from_numpy(x)).numpy(), atol=1e-5, rtol=1e-5)


def test_compile_records_the_key_map_and_bench_reloads_through_it(tmp_path):
    net = _lenet_checkpoint(tmp_path)
    art = tmp_path / "art"
    proc = _dlc("compile", "spec/lenet5.arch", "--weights", str(tmp_path / "lenet.safetensors"),
                "--weights-from", str(tmp_path / "lenet.toml"), "-o", str(art))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["weights_from"] == {"checkpoint": str(tmp_path / "lenet.safetensors"),
                                        "key_map": str(tmp_path / "lenet.toml")}
    x = np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert _dlc("run", str(art), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")).returncode == 0
    with torch.no_grad():
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), net(torch.from_numpy(x)).numpy(), atol=1e-5, rtol=1e-5)
    bench = _dlc("bench", str(art), "--runs", "2", "--warmup", "0", "--json")
    assert bench.returncode == 0, bench.stderr
    assert max(json.loads(bench.stdout)["max_abs_diff"].values()) < 1e-5  # PyTorch and ORT got the same weights


def test_weights_from_names_a_shipped_map_a_source_or_a_file(tmp_path):
    assert find_keymap("huggingface", "Bert").name == "huggingface-bert"
    assert find_keymap("huggingface-gpt2", "ResNet18").name == "huggingface-gpt2"  # by name: for any network
    save_file({}, str(tmp_path / "empty.safetensors"))
    unknown = _dlc("export", "onnx", "spec/resnet18.arch", "--weights", str(tmp_path / "empty.safetensors"),
                   "--weights-from", "pytorch", "-o", str(tmp_path / "r.onnx"))
    assert unknown.returncode == 2 and unknown.stderr == (
        "error: no key map `pytorch`: --weights-from takes `huggingface`, `huggingface-bert`, `huggingface-gpt2`, "
        "`torchvision` or the path of a key map (`*.toml`)\n")
    wrong = _dlc("export", "onnx", "spec/resnet18.arch", "--weights", str(tmp_path / "empty.safetensors"),
                 "--weights-from", "huggingface", "-o", str(tmp_path / "r.onnx"))
    assert wrong.returncode == 2 and wrong.stderr == (
        "error: no `huggingface` key map is for `ResNet18` (`huggingface-bert` is for `Bert`; `huggingface-gpt2` is "
        "for `GPT2`): name one of them, or pass a key map's path\n")
    alone = _dlc("export", "onnx", "spec/resnet18.arch", "--weights-from", "torchvision", "-o", str(tmp_path / "r.onnx"))
    assert alone.returncode == 2 and "pass --weights CKPT" in alone.stderr
    assert not (tmp_path / "r.onnx").exists()


@pytest.mark.parametrize(("text", "located", "reason"), [
    ("drop = ['x']\n[[rename]]\nfrom = 'fc(\\d\\.weight'\nto = 'x'\n", ":3:9",
     "bad pattern `fc(\\d\\.weight`: missing ), unterminated subpattern at position 2"),
    ("[[rename]]\nfrom = 'fc'\nto = ['a', 'b']\n", ":2:9",
     "the rule for `fc` has 2 names in `to`: several names need `split`, the dim to cut"),
    ("[[rename]]\nfrom = 'fc\\.(\\w+)'\nto = 'head.{2}'\n", ":3:7", "`head.{2}` uses `{2}`, which `fc\\.(\\w+)` does not capture"),
    ("[[rename]]\nform = 'fc'\n", ":2:1", "unknown field `form` in a [[rename]] rule (known: `from`, `split`, `to`, `transpose`)"),
    ("[[rename]\nfrom = 'fc'\n", ":1:9", "Expected ']]' at the end of an array declaration"),
], ids=["pattern", "split", "capture", "field", "toml"])
def test_a_malformed_key_map_is_a_located_diagnostic(tmp_path, text, located, reason):
    save_file({}, str(tmp_path / "empty.safetensors"))
    (tmp_path / "map.toml").write_text(text)
    proc = _dlc("export", "onnx", "spec/lenet5.arch", "--weights", str(tmp_path / "empty.safetensors"),
                "--weights-from", str(tmp_path / "map.toml"), "-o", str(tmp_path / "l.onnx"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error[E0108]: cannot read key map `{tmp_path / 'map.toml'}`: {reason}\n" in proc.stderr
    assert f" --> {tmp_path / 'map.toml'}{located}\n" in proc.stderr
    line = int(located.split(":")[1])
    assert f"{line} | {text.splitlines()[line - 1]}\n" in proc.stderr  # the line, quoted under the location


def test_a_renamed_scalar_stays_a_scalar(tmp_path):
    """`num_batches_tracked` is 0-d: a rename keeps its shape (np.ascontiguousarray would make it (1,))."""
    from dlc.compiler.keymaps import read_keymap

    (tmp_path / "map.toml").write_text("[[rename]]\nfrom = 'old\\.(.*)'\nto = 'new.{1}'\n")
    mapped = read_keymap(tmp_path / "map.toml").apply({"old.num_batches_tracked": np.array(7, np.int64)}, {})
    assert {k: (v.shape, int(v)) for k, v in mapped.arrays.items()} == {"new.num_batches_tracked": ((), 7)}


@pytest.mark.parametrize(("saved", "reason"), [
    ({"state_dict": {"conv1.weight": torch.zeros(6, 1, 5, 5)}, "epoch": 3},
     "`state_dict` holds a `dict`, not a tensor (save the model's `state_dict()` alone)"),
    (torch.nn.Linear(2, 2), "Weights only load failed."),  # a pickled module: weights_only refuses it
    ({"conv1.weight": torch.zeros(6, 1, 5, 5, dtype=torch.float8_e4m3fn)},
     "`conv1.weight` is torch.float8_e4m3fn, which numpy cannot hold; convert the checkpoint to float32 first"),
], ids=["training-record", "module", "float8"])
def test_torch_load_reads_state_dicts_only(tmp_path, saved, reason):
    torch.save(saved, tmp_path / "ckpt.pt")
    proc = _dlc("export", "onnx", "spec/lenet5.arch", "--weights", str(tmp_path / "ckpt.pt"), "--torch-load",
                "-o", str(tmp_path / "l.onnx"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error[E0107]: cannot read checkpoint `{tmp_path / 'ckpt.pt'}`: {reason}")
    assert "with `--torch-load`, a checkpoint is a `torch.save`d `state_dict`" in proc.stderr
