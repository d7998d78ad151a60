"""The model zoo: every entry builds and runs; stems, timm names, local pretrained weights."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from kit.cli.app import app
from kit.errors import KitError
from kit.models import create_model, list_models


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("cnn4", "default"),
        ("cnn4f", "default"),
        ("resnet18", "stride1"),
        ("resnet34", "default"),
        ("resnext50", "stride1"),
        ("densenet201", "default"),
        ("timm:resnet10t", "stride1"),
    ],
)
def test_every_entry_builds_and_runs(name, stem):
    model = create_model(name, num_classes=5, in_chans=1, drop_rate=0.2, stem=stem).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 32, 40))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_zoo_lists_the_earlier_entrants_models():
    assert list_models() == ["cnn4", "cnn4f", "resnet18", "resnet34", "resnext50", "densenet201"]


def test_cnn4f_head_sees_eight_frequency_bands_of_any_input_height():
    model = create_model("cnn4f", num_classes=4, in_chans=2).eval()
    assert model.head.in_features == 256 * 8
    with torch.no_grad():
        for height, width in ((128, 130), (40, 299), (256, 64)):
            assert model(torch.randn(2, 2, height, width)).shape == (2, 4)


def test_cnn_blocks_compute_conv_bn_relu_pool_with_old_weights():
    """The ReLU sits after the pool for speed: same function, same state-dict keys as entrant C's order."""
    model = create_model("cnn4", num_classes=4, in_chans=2).eval()
    torch.manual_seed(0)
    for block in model.features:
        block[1].running_mean.normal_()  # BN shifting values negative: the ReLU has work to do
    x = torch.randn(2, 2, 64, 64)
    with torch.no_grad():
        ref = x
        for conv, bn, *_ in model.features:
            ref = torch.nn.functional.max_pool2d(torch.relu(bn(conv(ref))), 2)
        assert torch.equal(model.features(x), ref)
    assert {k.split(".")[2] for k in model.state_dict() if k.startswith("features.")} == {"0", "1"}


def test_stride1_stem_is_3x3_stride1_without_maxpool():
    model = create_model("resnet34", num_classes=4, stem="stride1")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.in_channels == 1
    assert isinstance(model.maxpool, torch.nn.Identity)
    dense = create_model("densenet201", num_classes=4, stem="stride1")
    assert dense.features.conv0.stride == (1, 1) and isinstance(dense.features.pool0, torch.nn.Identity)


def test_dropout_before_head():
    assert create_model("resnet18", num_classes=4, drop_rate=0.3).drop_rate == 0.3
    cnn = create_model("cnn4", num_classes=4, drop_rate=0.3)
    assert cnn.drop.p == 0.3


def test_local_pretrained_weights_are_adapted(tmp_path):
    import timm
    from safetensors.torch import save_file

    donor = timm.create_model("resnet18", num_classes=1000)  # RGB, ImageNet-sized head
    save_file(donor.state_dict(), tmp_path / "w.safetensors")
    model = create_model("resnet18", num_classes=4, pretrained=str(tmp_path / "w.safetensors"))
    assert torch.allclose(model.conv1.weight, donor.conv1.weight.sum(1, keepdim=True))  # RGB -> 1 channel
    assert torch.equal(model.layer1[0].conv1.weight, donor.layer1[0].conv1.weight)
    assert model.fc.out_features == 4


def test_hub_weights_unreachable_is_one_line_error():
    code = "from kit.models import create_model; create_model('resnet18', num_classes=4, pretrained=True)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the hub is never contacted
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "KitError: could not load pretrained weights for resnet18" in result.stderr
    assert "local weights file" in result.stderr


def test_model_errors_are_one_line(tmp_path):
    with pytest.raises(KitError, match="weights file .* not found"):
        create_model("resnet18", num_classes=4, pretrained=str(tmp_path / "none.pth"))
    with pytest.raises(KitError, match="unknown model 'resnet99'"):
        create_model("resnet99", num_classes=4)
    with pytest.raises(KitError, match="unknown timm model 'nope'"):
        create_model("timm:nope", num_classes=4)


def test_kit_models_lists_parameter_counts():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "resnet34" in result.output and "21.28 M" in result.output and "0.39 M" in result.output


@pytest.mark.parametrize(("name", "stem"), [("cnn4f", "default"), ("resnet18", "stride1"), ("resnext50", "default")])
def test_packed_models_compute_and_learn_what_their_members_would(name, stem):
    """G models packed into one give each member's logits for its own batch (and for a shared one)
    and, after an SGD step on the summed losses, each member's own weights."""
    from kit.models.pack import member_state, pack

    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(create_model(name, num_classes=4, in_chans=2, stem=stem))
    x, y = torch.randn(4, 3, 2, 32, 24), torch.randint(0, 4, (4, 3))
    packed = pack(members, x[:, 0], name)
    for training in (True, False):
        packed.train(training)
        for m in members:
            m.train(training)
        own = torch.stack([m(x[:, g]) for g, m in enumerate(members)], 1)
        assert torch.allclose(packed(x), own, atol=1e-4)
        shared = torch.stack([m(x[:, 0]) for m in members], 1)
        assert torch.allclose(packed(x[:, 0]), shared, atol=1e-4)
    packed.train()
    opt = torch.optim.SGD(packed.parameters(), lr=0.1)
    logits = packed(x)
    sum(torch.nn.functional.cross_entropy(logits[:, g], y[:, g]) for g in range(3)).backward()
    opt.step()
    for g, m in enumerate(members):
        m.train()
        torch.optim.SGD(m.parameters(), lr=0.1).zero_grad()
        torch.nn.functional.cross_entropy(m(x[:, g]), y[:, g]).backward()
        with torch.no_grad():
            for param in m.parameters():
                param -= 0.1 * param.grad
        state = member_state(packed, g)
        assert state.keys() == m.state_dict().keys()
        assert all(torch.allclose(state[k].float(), v.float(), atol=1e-5) for k, v in m.state_dict().items())
    head = "head.weight" if name.startswith("cnn") else "fc.weight"
    assert not torch.allclose(member_state(packed, 0)[head], members[1].state_dict()[head])  # members differ


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("densenet201", "it has a BatchNormAct2d layer"),  # fused BatchNorm + activation
        ("timm:dla34", "its forward mixes channels outside its layers"),  # concatenates channels
        ("timm:res2net50_14w_8s", "its forward mixes channels outside its layers"),  # splits channels
    ],
)
def test_models_that_mix_channels_outside_convolutions_are_not_packed(name, why):
    from kit.models.pack import pack

    with pytest.raises(KitError, match=f"cannot pack {name}: {why}"):
        pack([create_model(name, num_classes=4) for _ in range(2)], torch.randn(2, 1, 32, 24), name)
