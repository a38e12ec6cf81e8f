"""The ``onnx`` package's own test cases, run through the importer and convc's reference.

Every case whose nodes are all supported or folded operators is run: the operator cases
that ``onnx.backend.test.case.node`` generates, and the PyTorch modules exported with their
inputs and expected outputs (``backend/test/data/pytorch-converted``, ``pytorch-operator``).
A case either passes (convc's float output within :data:`onnx_graphs.RTOL` of the expected
output, relative to its largest magnitude), or is refused with one :class:`ConvcError`
message (a 3-D input, a reachable pool padding, a dilation, ...). Anything else, a
mismatch or another exception, fails the test. The counts are printed.

The cases use batches of 2 to 10 and graph inputs for their weights: the runner imports with
``any_batch=True`` (the per-sample network does not depend on it; the command line refuses a
batch other than 1) and turns every graph input after the first into an initializer holding
the case's data (they are constants of the case).
"""

import glob
import os
import warnings

import numpy as np
import pytest

from onnx_graphs import DATA, RTOL, convc_output, onnx, rel_error

from convc.errors import ConvcError
from convc.reference.onnx_fold import FOLDED
from convc.reference.onnx_import import import_onnx
from convc.reference.onnx_load import SUPPORTED

from onnx import numpy_helper  # noqa: E402

KNOWN = set(SUPPORTED) | set(FOLDED)
LAYER_OPS = set(SUPPORTED) - {"Constant", "Identity"}      # a case of the supported operators has one


def _selected(model) -> bool:
    ops = {n.op_type for n in model.graph.node}
    return ops <= KNOWN and bool(ops & LAYER_OPS)
# cases that must pass, not only be refused cleanly
MUST_PASS = {"test_Conv2d_depthwise", "test_Conv2d_depthwise_with_multiplier", "test_Conv2d_padding",
             "test_Conv2d_strided", "test_AvgPool2d", "test_AvgPool2d_stride", "test_BatchNorm2d_eval",
             "test_BatchNorm2d_momentum_eval", "test_ReLU", "test_Tanh", "test_Linear", "test_Linear_no_bias",
             "test_LogSoftmax", "test_Softmax", "test_basic_conv_with_padding", "test_conv_with_strides_padding",
             "test_conv_with_autopad_same", "test_gemm_transposeB", "test_gemm_alpha", "test_gemm_beta",
             "test_lrn", "test_lrn_default", "test_globalaveragepool", "test_maxpool_2d_default",
             "test_maxpool_2d_ceil_output_size_reduce_by_one", "test_averagepool_2d_default", "test_operator_flatten"}
# cases refused for what convc does not do, and the words their message must hold
MUST_REFUSE = {"test_Conv2d": "non-square kernel", "test_Conv2d_groups": "non-square kernel",
               "test_Conv2d_dilated": "dilated windows", "test_MaxPool2d": "pooling reads no padding",
               "test_averagepool_2d_pads_count_include_pad": "count_include_pad",
               "test_conv_with_strides_and_asymmetric_padding": "the same padding on all four sides",
               "test_gemm_all_attributes": "'transA' = 1", "test_relu": "has 3 dimensions",
               "test_maxpool_2d_uint8": "element type UINT8", "test_Conv3d": "has 5 dimensions"}

def _node_cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        cases = collect_testcases()
    for case in cases:
        if case.model is None or not _selected(case.model):
            continue
        for inputs, outputs in case.data_sets:
            yield f"node/{case.name}", case.model, list(inputs), list(outputs)


def _folder_cases():
    for kind in ("pytorch-converted", "pytorch-operator"):
        for folder in sorted(glob.glob(os.path.join(DATA, kind, "test_*"))):
            model = onnx.load(os.path.join(folder, "model.onnx"))
            if not _selected(model):
                continue
            for data in sorted(glob.glob(os.path.join(folder, "test_data_set_*"))):
                def read(name):
                    return [numpy_helper.to_array(onnx.TensorProto.FromString(open(p, "rb").read()))
                            for p in sorted(glob.glob(os.path.join(data, f"{name}_*.pb")))]
                yield f"{kind}/{os.path.basename(folder)}", model, read("input"), read("output")


def _constants_from_data(model, inputs):
    """The model with its graph inputs after the first made initializers of the case's data."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    for proto, value in zip(graph_inputs[1:], inputs[1:]):
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), proto.name))
    return model


def _run(name, model, inputs, outputs):
    """'pass', or ('refused', message); raises AssertionError on a mismatch."""
    try:
        net = import_onnx(_constants_from_data(model, inputs), any_batch=True)
    except ConvcError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{name}: refusal without one clear line: {message!r}"
        return "refused", message
    if len(outputs) != 1:
        raise AssertionError(f"{name}: imported a graph with {len(outputs)} expected outputs")
    x = np.asarray(inputs[0])
    err = rel_error(convc_output(net, x), outputs[0])
    assert err < RTOL, f"{name}: relative error {err:.2e} against the expected output"
    return "pass", ""


def test_onnx_backend_cases_pass_or_are_refused_with_a_message(capsys):
    results = {}
    failures = []
    for name, model, inputs, outputs in [*_node_cases(), *_folder_cases()]:
        try:
            results[name] = _run(name, model, inputs, outputs)
        except AssertionError as exc:
            failures.append(str(exc))
        except Exception as exc:       # anything but a ConvcError is a failure, never silent
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    passed = sorted(n for n, (r, _) in results.items() if r == "pass")
    refused = sorted((n, m) for n, (r, m) in results.items() if r == "refused")
    with capsys.disabled():
        print(f"\nonnx backend cases of the supported operators: {len(passed)} pass, {len(refused)} refused "
              f"with a message, {len(failures)} fail (of {len(results) + len(failures)})")
    assert not failures, "\n".join(failures)
    missing = sorted(n for n in MUST_PASS if not any(p.endswith("/" + n) for p in passed))
    assert not missing, f"expected to pass: {missing}; refused: {[r for r in refused if r[0].split('/')[-1] in missing]}"
    why = {name.split("/")[-1]: message for name, message in refused}
    for case, words in MUST_REFUSE.items():
        assert words in why.get(case, ""), (case, why.get(case))
    assert len(passed) >= 50, len(passed)
