"""The ImageNet architectures the ``onnx`` wheel ships (weights from ``ConstantOfShape``):
imported with their constants folded, held to onnxruntime with random weights."""

import numpy as np
import pytest

from onnx_graphs import RTOL, convc_output, light_model, randomized, rel_error, run_ort, set_input_side

from convc.errors import ConvcError
from convc.reference.onnx_import import import_onnx


def _check(model):
    model = randomized(model)
    net = import_onnx(model)
    x = np.random.default_rng(0).standard_normal((1,) + tuple(net.input.shape)).astype(np.float32)
    err = rel_error(convc_output(net, x), run_ort(model, x))
    assert err < RTOL, err
    return net


def test_alexnet_at_224_is_refused_at_its_ceil_mode_pool():
    with pytest.raises(ConvcError, match=r"\(MaxPool\): attribute 'pads' = \[0, 0, 1, 1\]: the windows need 0 "
                                         r"before and 1 after"):
        import_onnx(light_model("bvlc_alexnet"))


def test_alexnet_at_227_imports_with_groups_and_lrn():
    net = _check(set_input_side(light_model("bvlc_alexnet"), 227))
    types = [l.type for l in net.layers]
    assert types.count("lrn") == 2 and types.count("conv2d") == 5 and types.count("linear") == 3
    assert [l.fan_in for l in net.layers if l.type == "conv2d"] == [3, 48, 256, 192, 192]
    assert net.meta["onnx"]["output"] == "softmax" and net.classes == 1000


def test_zfnet512_imports():
    net = _check(light_model("zfnet512"))
    assert [l.type for l in net.layers].count("lrn") == 2


@pytest.mark.slow
def test_vgg19_imports():
    net = _check(light_model("vgg19"))
    assert net.layers[[l.type for l in net.layers].index("linear")].in_features == 25088
