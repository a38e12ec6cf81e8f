"""ONNX import: every supported operator and whole networks held to onnxruntime, and every
refusal one message naming the node and the field."""

import numpy as np
import pytest

from onnx_graphs import NEWEST, RTOL, Graph, convc_output, onnx, rel_error, run_ort

from convc.errors import ConvcError
from convc.reference.modelfile import load_model, save_model
from convc.reference.onnx_import import import_onnx
from convc.reference.onnx_load import SUPPORTED

OPSETS = (9, 13, NEWEST)


def check(model, shape, seed=1, **kwargs):
    """Import ``model`` and hold convc's reference to onnxruntime on a random input."""
    net = import_onnx(model, **kwargs)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    err = rel_error(convc_output(net, x), run_ort(model, x))
    assert err < RTOL, err
    return net


def conv_graph(shape=(1, 4, 9, 9), opset=13, **attrs):
    g = Graph(shape)
    out, cin = attrs.pop("out", 6), shape[1] // attrs.get("group", 1)
    k = attrs.get("kernel_shape", [3, 3])[0]
    inputs = [g.weight(out, cin, k, k)] + ([g.weight(out)] if attrs.pop("bias", True) else [])
    return g.add("Conv", *inputs, **attrs).model(opset)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
    {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2], "group": 2},
    {"kernel_shape": [3, 3], "group": 4, "out": 8},
    {"kernel_shape": [1, 1], "bias": False},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]},    # the end pad no window reads
], ids=["plain", "pad-stride", "group2", "depthwise", "1x1-nobias", "same", "unread-end-pad"])
def test_conv_matches_onnxruntime(opset, attrs):
    net = check(conv_graph(opset=opset, **dict(attrs)), (1, 4, 9, 9))
    conv = net.layers[0]
    group = attrs.get("group", 1)
    assert (conv.table is None) == (group == 1)
    if group > 1:
        assert conv.fan_in == 4 // group


def test_grouped_conv_weights_outside_the_table_are_zero_and_the_model_file_loads(tmp_path):
    net = import_onnx(conv_graph(kernel_shape=[3, 3], group=2))
    conv = net.layers[0]
    assert np.all(conv.params["weight"][~conv.connection_mask()] == 0)
    again = load_model(save_model(net, tmp_path / "m.npz"))
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 9))
    np.testing.assert_array_equal(again.forward(x), net.forward(x))


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [1, 1], "count_include_pad": 1}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]}),   # 9: pad unread
    ("GlobalAveragePool", {}),
])
def test_pooling_matches_onnxruntime(opset, op, attrs):
    g = Graph((1, 3, 9, 9)).add(op, **attrs)
    check(g.model(opset), (1, 3, 9, 9))


def test_ceil_mode_that_gives_the_floor_size_is_accepted():
    g = Graph((1, 2, 9, 9)).add("MaxPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    check(g.model(13), (1, 2, 9, 9))


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("op,attrs", [("Relu", {}), ("Tanh", {}), ("Abs", {}),
                                      ("LRN", {"size": 3}), ("LRN", {"size": 5, "alpha": 0.5, "beta": 0.6,
                                                                     "bias": 2.0}),
                                      ("Dropout", {}), ("Identity", {})])
def test_elementwise_and_lrn_match_onnxruntime(opset, op, attrs):
    check(Graph((1, 5, 4, 4)).add(op, **attrs).model(opset), (1, 5, 4, 4))


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("attrs,bias_shape", [
    ({}, (5,)), ({"transB": 1}, (5,)), ({"alpha": 0.5, "beta": 2.0}, (1, 5)), ({"transB": 1}, ()),
    ({}, None)])
def test_gemm_matches_onnxruntime(opset, attrs, bias_shape):
    g = Graph((1, 7))
    w = g.weight(5, 7) if attrs.get("transB") else g.weight(7, 5)
    extra = [w] if bias_shape is None else [w, g.const(g.rng.standard_normal(bias_shape).astype(np.float32))]
    if bias_shape is None and opset < 11:
        extra.append(g.const(np.zeros(5, np.float32)))     # C is required before opset 11
    check(g.add("Gemm", *extra, **attrs).model(opset), (1, 7))


@pytest.mark.parametrize("opset", OPSETS)
def test_matmul_then_add_is_one_linear_layer(opset):
    g = Graph((1, 2, 3, 3)).add("Flatten")
    g.add("MatMul", g.weight(18, 4)).add("Add", g.weight(4))
    net = check(g.model(opset), (1, 2, 3, 3))
    assert [l.type for l in net.layers] == ["flatten", "linear"]


@pytest.mark.parametrize("opset", OPSETS)
def test_the_pytorch_flatten_chain_is_folded(opset):
    """``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    g = Graph((1, 3, 4, 4)).add("Relu")
    x = g.last
    shape = g.node("Shape", [x])
    n = g.node("Gather", [shape, g.const(np.array(0, np.int64))], axis=0)
    if opset >= 13:
        n1 = g.node("Unsqueeze", [n, g.const(np.array([0], np.int64))])
    else:
        n1 = g.node("Unsqueeze", [n], axes=[0])
    minus = g.node("Constant", [], value=onnx.numpy_helper.from_array(np.array([-1], np.int64)))
    target = g.node("Concat", [n1, minus], axis=0)
    g.last = g.node("Reshape", [x, target])
    g.add("Gemm", g.weight(4, 48), g.weight(4), transB=1)
    net = check(g.model(opset), (1, 3, 4, 4))
    assert [l.type for l in net.layers] == ["relu", "flatten", "linear"]


def test_reshape_to_the_same_shape_is_dropped_and_constant_nodes_fold():
    g = Graph((1, 2, 3, 3))
    shape = g.node("Constant", [], value=onnx.numpy_helper.from_array(np.array([1, 2, 3, 3], np.int64)))
    g.add("Reshape", shape).add("Tanh")
    net = check(g.model(13), (1, 2, 3, 3))
    assert [l.type for l in net.layers] == ["tanh"]


@pytest.mark.parametrize("where", ["conv", "gemm", "input"])
def test_batchnorm_is_folded(where):
    shape = (1, 3, 6, 6) if where != "gemm" else (1, 8)
    g = Graph(shape)
    c = 3
    if where == "conv":
        g.add("Conv", g.weight(5, 3, 3, 3), g.weight(5), kernel_shape=[3, 3])
        c = 5
    elif where == "gemm":
        g.add("Gemm", g.weight(6, 8), g.weight(6), transB=1)
        c = 6
    scale = g.rng.uniform(0.5, 2, c).astype(np.float32)
    stats = [g.const(scale), g.weight(c), g.weight(c), g.const(g.rng.uniform(0.5, 2, c).astype(np.float32))]
    g.add("BatchNormalization", *stats, epsilon=1e-3)
    net = check(g.model(13), shape)
    assert "batchnorm" not in [l.type for l in net.layers]
    if where == "input":
        assert net.layers == [] and net.input.std != [1.0, 1.0, 1.0]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_at_the_end_becomes_logsoftmax(opset, op):
    g = Graph((1, 6))
    g.add("Gemm", g.weight(4, 6), g.weight(4), transB=1).add(op, axis=1)
    net = check(g.model(opset), (1, 6))
    assert net.layers[-1].type == "logsoftmax"
    assert net.meta["onnx"]["output"] == op.lower()
    assert net.classes == 4


def test_lenet_as_pytorch_exports_it_matches_and_compiles():
    """The graph shapes of a PyTorch LeNet export (conv, BN, relu, pools, the flatten chain,
    Constant nodes, Gemm, Dropout, LogSoftmax), without PyTorch."""
    from convc.boards import get_board
    from convc.pipeline import CompileOptions, compile_network

    g = Graph((1, 1, 32, 32), seed=4)
    g.add("Conv", g.weight(6, 1, 5, 5), g.weight(6), kernel_shape=[5, 5])
    g.add("BatchNormalization", *(g.const(g.rng.uniform(0.5, 1.5, 6).astype(np.float32)) for _ in range(4)))
    g.add("Relu").add("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    g.add("Conv", g.weight(16, 6, 5, 5, scale=0.2), g.weight(16), kernel_shape=[5, 5]).add("Tanh")
    g.add("AveragePool", kernel_shape=[2, 2], strides=[2, 2])
    x = g.last
    n = g.node("Gather", [g.node("Shape", [x]), g.const(np.array(0, np.int64))], axis=0)
    n1 = g.node("Unsqueeze", [n, g.const(np.array([0], np.int64))])
    target = g.node("Concat", [n1, g.node("Constant", [], value=onnx.numpy_helper.from_array(
        np.array([-1], np.int64)))], axis=0)
    g.last = g.node("Reshape", [x, target])
    g.add("Gemm", g.weight(120, 400, scale=0.1), g.weight(120), transB=1).add("Relu")
    g.add("Dropout", outputs=2)
    g.add("MatMul", g.weight(120, 10, scale=0.2)).add("Add", g.weight(10)).add("LogSoftmax", axis=1)
    model = g.model(13)
    net = check(model, (1, 1, 32, 32))
    assert [l.type for l in net.layers] == ["conv2d", "relu", "maxpool2d", "conv2d", "tanh", "avgpool2d",
                                            "flatten", "linear", "relu", "linear", "logsoftmax"]
    calib = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    result = compile_network(net, get_board("virtex6"), CompileOptions(calib=2), where="lenet.onnx", calib=calib)
    assert result.report["macs"] == sum(r.macs for r in net.info()) and result.report["ms_per_frame"] > 0


def test_mean_and_std_are_stored_and_applied(tmp_path):
    model = conv_graph(shape=(1, 2, 6, 6), kernel_shape=[3, 3], group=2)
    net = import_onnx(model, mean=[0.5, -1.0], std=[2.0, 4.0])
    assert net.input.mean == [0.5, -1.0] and net.input.std == [2.0, 4.0]
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    xn = (x - np.array([0.5, -1.0], np.float32).reshape(1, 2, 1, 1)) / np.array([2.0, 4.0], np.float32).reshape(
        1, 2, 1, 1)
    assert rel_error(net.forward(x.astype(np.float64)), run_ort(model, xn)) < RTOL
    again = load_model(save_model(net, tmp_path / "m.npz"))
    assert again.input.mean == [0.5, -1.0]
    with pytest.raises(ConvcError, match="--mean: 3 values for 2 input channels"):
        import_onnx(model, mean=[1, 2, 3])


def test_a_vector_input_is_read_as_maps_of_one_pixel():
    g = Graph((1, 7))
    g.add("Gemm", g.weight(3, 7), g.weight(3), transB=1).add("Tanh")
    net = check(g.model(13), (1, 7))
    assert net.input.shape == (7, 1, 1) and net.layers[0].type == "flatten"


def test_a_dynamic_input_needs_the_input_shape_and_then_imports():
    g = Graph(("N", 2, "H", "W")).add("Relu")
    with pytest.raises(ConvcError, match="batch dimension is dynamic"):
        import_onnx(g.model(13))
    g = Graph((1, 2, "H", "W")).add("Relu")
    with pytest.raises(ConvcError, match=r"dynamic input shape \(1, 2, H, W\); pass --input-shape C,H,W"):
        import_onnx(g.model(13))
    net = check(g.model(13), (1, 2, 5, 7), input_shape=(2, 5, 7))
    assert net.input.shape == (2, 5, 7)
    with pytest.raises(ConvcError, match="does not match"):
        import_onnx(g.model(13), input_shape=(3, 5, 7))


# -- refusals: one message naming the node and the field ------------------------------

def refused(model, pattern, **kwargs):
    with pytest.raises(ConvcError, match=pattern) as info:
        import_onnx(model, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_refusals_name_the_node_and_the_field():
    refused(_nonsquare(), r"node 0 'conv\d+' \(Conv\): "
            r"attribute 'kernel_shape' = \[3, 1\]: non-square kernel")
    refused(conv_graph(kernel_shape=[3, 3], dilations=[2, 2]), "attribute 'dilations' = \\[2, 2\\]: dilated")
    refused(conv_graph(kernel_shape=[3, 3], pads=[1, 1, 2, 2]), "convc takes symmetric padding")
    refused(conv_graph(kernel_shape=[3, 3], strides=[1, 2]), "unequal strides")
    refused(Graph((1, 2, 6, 6)).add("MaxPool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]).model(13),
            "convc's pooling reads no padding")
    refused(Graph((1, 2, 6, 6)).add("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                    count_include_pad=0).model(13), "count_include_pad")
    refused(Graph((1, 2, 5, 5)).add("MaxPool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1).model(13),
            "ceil_mode")
    refused(Graph((2, 2, 5, 5)).add("Relu").model(13), "batch size 2; convc runs one frame at a time")
    refused(Graph((1, 2, 5)).add("Relu").model(13), "has 3 dimensions")
    msg = refused(Graph((1, 2, 5, 5)).add("Sigmoid").model(13), r"node 0 'sigmoid\d+' \(Sigmoid\): operator "
                  "Sigmoid is not supported")
    assert all(op in msg for op in SUPPORTED)
    refused(Graph((1, 2, 5, 5)).add("Relu").model(5), "opset 5 is not supported")
    refused(Graph((1, 3, 4, 4)).add("Softmax", axis=1).model(13), "needs an \\(N, F\\) vector")
    g = Graph((1, 4)).add("Softmax", axis=1).add("Relu")
    refused(g.model(13), "Softmax must be the last node")
    g = Graph((1, 3, 4, 4)).add("Relu")
    refused(g.add("Reshape", g.const(np.array([1, 3, 16], np.int64))).model(13), "takes only a flatten")
    g = Graph((1, 2, 5, 5)).add("Relu")
    refused(g.add("BatchNormalization", *(g.const(np.ones(2, np.float32)) for _ in range(4))).model(13),
            "must follow a Conv, Gemm or MatMul directly")


def _nonsquare():
    g = Graph((1, 2, 6, 6))
    return g.add("Conv", g.weight(3, 2, 3, 1), kernel_shape=[3, 1]).model(13)


def test_a_branch_is_refused():
    g = Graph((1, 2, 5, 5)).add("Relu")
    a = g.last
    b = g.node("Tanh", [a])
    g.last = g.node("Add", [a, b])
    refused(g.model(13), "read by 2 nodes; convc takes a chain")


def test_a_weight_that_is_computed_is_refused():
    g = Graph((1, 2, 5, 5)).add("Relu")
    g.add("Conv", g.last, kernel_shape=[1, 1])
    refused(g.model(13), "reads more than one computed tensor|read by 2 nodes")


def test_bad_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx at all\xff" * 20)
    with pytest.raises(ConvcError, match="junk.onnx: not an ONNX model"):
        import_onnx(junk)
    good = Graph((1, 2, 5, 5)).add("Relu").model(13).SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ConvcError, match="cut.onnx: not an ONNX model"):
        import_onnx(cut)
    with pytest.raises(ConvcError, match="no such ONNX file"):
        import_onnx(tmp_path / "absent.onnx")


def test_missing_external_data_is_named(tmp_path):
    g = Graph((1, 2, 5, 5))
    g.add("Conv", g.weight(3, 2, 3, 3), kernel_shape=[3, 3])
    model = g.model(13)
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    assert import_onnx(path).layers[0].type == "conv2d"
    (tmp_path / "ext.data").unlink()
    with pytest.raises(ConvcError, match="external data of initializer .* cannot be read"):
        import_onnx(path)


def test_damaged_files_import_or_give_one_message(tmp_path):
    """Bytes flipped, cut or repeated in a valid LeNet-like file: every outcome is a model
    or one ConvcError, never another exception."""
    g = Graph((1, 1, 12, 12), seed=2)
    g.add("Conv", g.weight(4, 1, 3, 3), g.weight(4), kernel_shape=[3, 3], pads=[1, 1, 1, 1]).add("Relu")
    g.add("MaxPool", kernel_shape=[2, 2], strides=[2, 2]).add("Flatten")
    g.add("Gemm", g.weight(3, 144), g.weight(3), transB=1).add("Softmax", axis=1)
    good = g.model(13).SerializeToString()
    rng = np.random.default_rng(7)
    outcomes = {"ok": 0, "refused": 0}
    path = tmp_path / "m.onnx"
    for trial in range(150):
        data = bytearray(good)
        kind = trial % 3
        if kind == 0:
            for i in rng.integers(0, len(data), 4):
                data[i] = int(rng.integers(0, 256))
        elif kind == 1:
            data = data[:int(rng.integers(1, len(data)))]
        else:
            i, n = int(rng.integers(0, len(data) - 8)), int(rng.integers(1, 8))
            data[i:i] = data[i:i + n]
        path.write_bytes(bytes(data))
        try:
            import_onnx(path)
            outcomes["ok"] += 1
        except ConvcError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0
