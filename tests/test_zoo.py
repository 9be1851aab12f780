"""The model zoo: every spec checks, and parameter counts equal the reference implementations'.

Counts marked (issue) are torchvision's / Hugging Face's published numbers; the others were
cross-checked against hand-written PyTorch references when the spec was written.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SPEC
from dlc.compiler.passes.cost import count_costs
from dlc.compiler.pipeline import compile_file

# (file, network) -> parameters
EXPECTED = {
    ("resnet18.arch", "ResNet18"): 11_689_512,  # (issue) torchvision
    ("resnet50.arch", "ResNet50"): 25_557_032,  # (issue) torchvision
    ("vgg16.arch", "VGG16"): 138_357_544,  # (issue) torchvision
    ("alexnet.arch", "AlexNet"): 61_100_840,  # (issue) torchvision
    ("densenet121.arch", "DenseNet121"): 7_978_856,  # (issue) torchvision
    ("googlenet.arch", "GoogLeNet"): 6_624_904,  # (issue) torchvision, no aux heads
    ("gpt2.arch", "GPT2"): 124_439_808,  # (issue) GPT-2 small, tied head
    ("bert.arch", "Bert"): 109_482_240,  # (issue) BERT-base with pooler
    ("lenet5.arch", "LeNet5"): 61_706,
    ("digits_cnn.arch", "DigitsCNN"): 56_554,
    ("transformer.arch", "Transformer"): 63_082_496,
    ("seq2seq.arch", "Seq2Seq"): 27_853_856,
    ("word2vec.arch", "SkipGram"): 6_000_000,
    ("word2vec.arch", "SkipGramNS"): 6_000_000,
    ("siamese.arch", "SiameseKoch"): 38_951_745,
    ("siamese.arch", "SiameseCosine"): 1_690_624,
    ("dcgan.arch", "Generator"): 3_576_704,  # PyTorch DCGAN tutorial
    ("dcgan.arch", "Discriminator"): 2_765_568,  # PyTorch DCGAN tutorial
    ("mlp_autoencoder.arch", "AutoEncoder"): 419_120,
    ("conv_autoencoder.arch", "ConvAutoEncoder"): 210_369,
    ("vae.arch", "VAE"): 652_824,
    ("cgan.arch", "Generator"): 1_511_412,
    ("cgan.arch", "Discriminator"): 932_965,
    ("acgan.arch", "Generator"): 1_050_985,
    ("acgan.arch", "Discriminator"): 102_987,
    ("wgan.arch", "Generator"): 1_510_032,
    ("wgan.arch", "Critic"): 533_505,
    ("pixelcnn.arch", "PixelCNN"): 430_464,
    ("unet.arch", "UNet"): 31_030_658,
    ("vit_b_16.arch", "VisionTransformer"): 86_567_656,  # (issue) torchvision vit_b_16
    ("mobilenet_v2.arch", "MobileNetV2"): 3_504_872,  # (issue) torchvision mobilenet_v2
}

SPECS = sorted(p.name for p in SPEC.glob("*.arch"))


@pytest.mark.parametrize("name", SPECS)
def test_every_zoo_spec_checks(name):
    result = compile_file(f"spec/{name}")
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.graphs, f"{name} defines no network"
    for graph in result.graphs.values():
        assert graph.outputs and all(graph.values[v].type is not None for _, v in graph.outputs)


@pytest.mark.parametrize(("name", "model"), sorted(EXPECTED), ids=[f"{f}:{m}" for f, m in sorted(EXPECTED)])
def test_parameter_counts_match_references(name, model):
    graph = compile_file(f"spec/{name}", model).graphs[model]
    assert count_costs(graph).total_params == EXPECTED[(name, model)]


def test_the_course_notes_models_are_all_in_the_zoo():
    wanted = {"mlp_autoencoder", "conv_autoencoder", "vae", "dcgan", "cgan", "acgan", "wgan", "pixelcnn", "lenet5",
              "alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "densenet121", "unet", "seq2seq",
              "transformer", "gpt2", "bert", "word2vec", "siamese", "digits_cnn"}
    assert wanted <= {p.stem for p in SPEC.glob("*.arch")}


def test_summary_json_reports_resnet18():
    proc = subprocess.run([sys.executable, "-m", "dlc", "summary", "spec/resnet18.arch", "--json"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    report = json.loads(proc.stdout)
    assert report["total_params"] == 11_689_512 == report["trainable_params"]
    assert report["flops"] > 3.6e9  # ~1.82 GMACs at 224x224
    assert report["layers"][0] == {**report["layers"][0], "name": "conv1", "op": "conv2d",
                                   "output_shapes": ["(B, 64, 112, 112)"]}
    names = {w["name"] for w in report["weights"]}
    assert {"layer2.0.downsample.0.weight", "fc.weight", "bn1.running_mean"} <= names


def test_torchvision_state_dict_keys_for_resnet50():
    graph = compile_file("spec/resnet50.arch").graphs["ResNet50"]
    keys = {w.name: w.shape for w in graph.weights}
    assert keys["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert keys["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert keys["fc.weight"] == (1000, 2048)
    assert len(keys) == 320  # torchvision's resnet50 state_dict has 320 entries


def test_docs_are_generated_from_the_current_grammar_and_op_table():
    from dlc.compiler.docs import ops_markdown

    assert (ROOT / "docs" / "ops.md").read_text() == ops_markdown() + "\n"
    grammar = (ROOT / "compiler" / "syntax" / "grammar.lark").read_text()
    assert f"```lark\n{grammar}```" in (ROOT / "docs" / "language.md").read_text()


def test_weight_key_docs_are_current():
    from dlc.compiler.docs import weights_markdown

    assert (ROOT / "docs" / "weights.md").read_text() == weights_markdown() + "\n"
