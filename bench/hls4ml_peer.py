"""Peer measurement: hls4ml's C++ emulation (``predict()``) of a convc LeNet.

Optional: needs ``hls4ml`` and ``torch`` (not convc dependencies) and g++.
Used by bench scripts run as ``python bench/x.py``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path

import numpy as np

PRECISION = "ap_fixed<16,6>"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _torch_module(net, nn):
    """``nn.Sequential`` with the weights of ``net``; a final logsoftmax is left out."""
    import torch

    mods = []
    for i, layer in enumerate(net.layers):
        t = layer.type
        if t == "conv2d":
            if layer.table is not None:
                raise ValueError("conv2d with a connection table has no torch equivalent here")
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel,
                          stride=layer.stride, padding=layer.padding)
        elif t == "linear":
            m = nn.Linear(layer.in_features, layer.out_features)
        elif t in ("maxpool2d", "avgpool2d"):
            m = (nn.MaxPool2d if t == "maxpool2d" else nn.AvgPool2d)(layer.kernel, layer.stride)
        elif t in ("tanh", "relu", "flatten"):
            m = {"tanh": nn.Tanh, "relu": nn.ReLU, "flatten": nn.Flatten}[t]()
        elif t == "logsoftmax" and i == len(net.layers) - 1:
            continue  # not in hls4ml's PyTorch frontend; monotonic, top-1 unchanged
        else:
            raise ValueError(f"layer {net.names[i]!r} ({t}) not mapped to torch")
        if t in ("conv2d", "linear"):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.asarray(layer.params["weight"], np.float32)))
                m.bias.copy_(torch.from_numpy(np.asarray(layer.params["bias"], np.float32)))
        mods.append(m)
    return nn.Sequential(*mods).eval()


def hls4ml_predict_rate(net, x, workdir, reps=3, log=print) -> dict | None:
    """Time hls4ml's bit-accurate C++ emulation of ``net`` on one thread.

    The convc network is rebuilt as a ``torch.nn.Sequential`` with the same
    weights (checked against ``net.forward`` to 1e-4), converted with
    ``hls4ml.converters.convert_from_pytorch_model`` (Vivado backend,
    ``io_parallel``, model-wide ``ap_fixed<16,6>``, reuse factor 1) and
    compiled with g++ in ``workdir``. ``predict()`` is then timed on the
    normalized inputs.

    Parameters
    ----------
    net : convc.reference.network.Network
        Trained network of conv2d / tanh / relu / pooling / flatten / linear
        layers, optionally ending in logsoftmax (left out of the hls4ml model:
        hls4ml has no LogSoftmax; top-1 is unchanged).
    x : ndarray, shape (N, C, H, W)
        Raw float inputs; ``net.input.normalize`` is applied here.
    workdir : str or path-like
        Where hls4ml writes and builds its project.
    reps : int
        Timed ``predict()`` runs; the median is reported.
    log : callable
        Receives one-line progress / skip messages.

    Returns
    -------
    dict or None
        ``images, seconds, images_per_second, compile_seconds,
        top1_agreement_with_float, hls4ml_version, precision``; None (logged)
        when torch or hls4ml cannot be imported.

    Notes
    -----
    Inputs are passed channels-first (N, C, H, W): with the default
    ``channels_last_conversion='full'`` hls4ml converts to its channels-last
    layout itself (for one input channel the transpose is a no-op and is
    dropped; the flatten order is folded into the first dense weights). ``predict()`` loops over samples in
    Python and calls the C++ top function once per image through ctypes, so
    the rate includes that per-call overhead, as a user of hls4ml sees it.
    """
    for var in _THREAD_VARS:  # effective only if torch is not imported yet
        os.environ[var] = "1"
    try:
        import torch
        from torch import nn
        import hls4ml
    except Exception as exc:  # ImportError, or a broken install
        log(f"hls4ml peer skipped: cannot import torch/hls4ml ({type(exc).__name__}: {exc})")
        return None
    torch.set_num_threads(1)

    xn = np.ascontiguousarray(net.input.normalize(np.asarray(x, np.float32)), dtype=np.float32)
    ref = net.forward(np.asarray(x, np.float32))
    model = _torch_module(net, nn)
    with torch.no_grad():
        out = model(torch.from_numpy(xn))
        if net.layers[-1].type == "logsoftmax":
            out = torch.log_softmax(out, dim=-1)
    err = float(np.max(np.abs(out.numpy() - ref)))
    if err > 1e-4:
        raise AssertionError(f"torch copy of the network differs from net.forward by {err:g}")

    config = hls4ml.utils.config_from_pytorch_model(
        model, input_shape=tuple(net.input.shape), granularity="model",
        backend="Vivado", default_precision=PRECISION)
    out_dir = Path(workdir) / "hls4ml_prj"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / "hls4ml_convert.log", "w") as chatter, contextlib.redirect_stdout(chatter):
        hmodel = hls4ml.converters.convert_from_pytorch_model(
            model, hls_config=config, output_dir=str(out_dir), backend="Vivado", io_type="io_parallel")
        t0 = time.perf_counter()
        hmodel.compile()
        compile_s = time.perf_counter() - t0
    log(f"hls4ml {hls4ml.__version__}: compiled in {compile_s:.1f} s ({out_dir})")

    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        y = hmodel.predict(xn)
        times.append(time.perf_counter() - t0)
    y = np.asarray(y).reshape(len(xn), -1)
    agree = float(np.mean(np.argmax(y, axis=1) == np.argmax(ref, axis=1)))
    sec = statistics.median(times)
    return dict(images=len(xn), seconds=sec, images_per_second=len(xn) / sec,
                compile_seconds=compile_s, top1_agreement_with_float=agree,
                hls4ml_version=hls4ml.__version__, precision=PRECISION)
