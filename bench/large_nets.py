"""ImageNet-size architectures as convc specs, for benchmarks.

convc has no ONNX import yet, so the networks the seed and its successors
show are written out here layer by layer as spec dictionaries (see
:mod:`convc.reference.archs`), with fresh weights.  Local response
normalization (AlexNet, ZFNet) is not a convc layer: those specs leave it out
and say so in their names.
"""

from __future__ import annotations

from convc.reference.archs import grouped_table


def _conv(name, out, k, stride=1, pad=0, table=None):
    attrs = {"out_channels": out, "kernel": k, "stride": stride, "padding": pad}
    if table is not None:
        attrs["table"] = table
    return [{"name": name, "type": "conv2d", "attrs": attrs}, {"name": name + "_relu", "type": "relu"}]


def _pool(name, k, s):
    return [{"name": name, "type": "maxpool2d", "attrs": {"kernel": k, "stride": s}}]


def _classifier(fan_out: tuple[int, ...]) -> list[dict]:
    layers = [{"name": "flatten", "type": "flatten"}]
    for i, n in enumerate(fan_out):
        layers.append({"name": f"fc{6 + i}", "type": "linear", "attrs": {"out_features": n}})
        if i + 1 < len(fan_out):
            layers.append({"name": f"fc{6 + i}_relu", "type": "relu"})
    return layers + [{"name": "logsoftmax", "type": "logsoftmax"}]


def vgg19(classifier: bool = True) -> dict:
    """VGG-19 (Simonyan and Zisserman 2014) on 3x224x224: sixteen 3x3
    convolutions in five blocks, each block ending in 2x2 max pooling; then
    fully connected 25088 -> 4096 -> 4096 -> 1000 (19.6 GMAC in all)."""
    layers, i = [], 0
    for block, (n, maps) in enumerate([(2, 64), (2, 128), (4, 256), (4, 512), (4, 512)], 1):
        for _ in range(n):
            i += 1
            layers += _conv(f"conv{i}", maps, 3, pad=1)
        layers += _pool(f"pool{block}", 2, 2)
    if classifier:
        layers += _classifier((4096, 4096, 1000))
    return {"name": "vgg19" if classifier else "vgg19-features", "input": {"shape": [3, 224, 224]},
            "classes": 1000, "layers": layers}


def alexnet(classifier: bool = True) -> dict:
    """AlexNet (Krizhevsky et al. 2012) on 3x224x224 without its local
    response normalization: 11x11/4 (96), 3x3/2 pool, 5x5 (256, two groups),
    3x3/2 pool, 3x3 (384), 3x3 (384, two groups), 3x3 (256, two groups), 3x3/2
    pool; then 9216 -> 4096 -> 4096 -> 1000."""
    layers = (_conv("conv1", 96, 11, stride=4, pad=2) + _pool("pool1", 3, 2)
              + _conv("conv2", 256, 5, pad=2, table=grouped_table(256, 96, 48, 2)) + _pool("pool2", 3, 2)
              + _conv("conv3", 384, 3, pad=1)
              + _conv("conv4", 384, 3, pad=1, table=grouped_table(384, 384, 192, 2))
              + _conv("conv5", 256, 3, pad=1, table=grouped_table(256, 384, 192, 2))
              + _pool("pool5", 3, 2))
    if classifier:
        layers += _classifier((4096, 4096, 1000))
    return {"name": "alexnet-nolrn" if classifier else "alexnet-nolrn-features",
            "input": {"shape": [3, 224, 224]}, "classes": 1000, "layers": layers}


#: Every spec the golden-model benchmark tries, whole and without classifier.
LARGE = {
    "vgg19": lambda: vgg19(True),
    "vgg19-features": lambda: vgg19(False),
    "alexnet-nolrn": lambda: alexnet(True),
    "alexnet-nolrn-features": lambda: alexnet(False),
}
