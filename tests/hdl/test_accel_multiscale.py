"""The multiscale scene parser (issue 15) in RTL, at a reduced size, against the golden
model and the cycle model: every word of every region (LCN, the pyramid, the three
scales' trunks reading one copy of the shared weights, the classifier a scale reading its
scale upsampled, the sum) and the cycle model within 1% per record, per layer and in all.

The full frame's cycles and ms come from ``bench/bench_sceneparse_ms.py``.
"""

from __future__ import annotations

import numpy as np

from test_accel import _check, _compile
from convc.compiler import isa
from convc.reference.archs import multiscale
from convc.reference.modelfile import network_from_graph


def test_multiscale_reduced_rtl_equals_golden_and_cycle_model(tmp_path):
    """3x64x80 with the seed's widths (16, 64, 256 maps; each reads 8, 32), at the lanes the
    board gives (FC 5 x 4: the classifier's sum runs on the FC engine)."""
    from convc.sim.verify import verify

    net = network_from_graph(multiscale("ms-64x80", (3, 64, 80)), "ms-64x80")
    net.init_params(seed=7)
    calib = np.random.default_rng(1).random((4,) + net.input.shape, dtype=np.float32)
    out, model, program = _compile(tmp_path, net, dict(fc_out_lanes=4), calib=calib)
    layers: dict[str, list] = {}
    for ins, name in zip(program.instrs, program.names):
        layers.setdefault(name, []).append(ins)
    assert layers["lcn"][0].op == isa.OP_LCN
    # one copy of each trunk weight block, read by all three scales
    for base in ("conv1", "conv2", "conv3"):
        blocks = {i.w_addr for i in layers[base]}
        assert {i.w_addr for i in layers[base + "_s2"]} == blocks == {i.w_addr for i in layers[base + "_s3"]}
    assert sorted({i.up for i in layers["classifier.parts"]}) == [0, 1, 2]
    for name in ("conv2", "conv3"):                                # input groups and output passes
        assert -(-layers[name][0].n_in // program.hw.in_lanes) >= 2, name
        assert len({ins.o0 for ins in layers[name]}) >= 2, name
    res = verify(out, images=1, model=model, report_dir=tmp_path / "verify", log=None)
    _check(res, program, 1)
