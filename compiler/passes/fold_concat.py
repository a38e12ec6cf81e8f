"""Fold a 1x1 classifier over concatenated, upsampled maps into per-part classifiers.

A multiscale net ends with ``concat(a, up(b, 2), up(c, 4)) -> conv 1x1``. Read as written,
the accelerator would upsample every coarse map (hundreds of maps at the finest size, one
output map a pass) before the classifier reads them. A 1x1 convolution is linear and
nearest upsampling only repeats pixels, so

    W [a; up(b); up(c)] + B = (W_a a + B) + up(W_b b) + up(W_c c)

where ``W_k`` are the classifier's columns of part ``k``. This pass rewrites the pattern
into

- one 1x1 convolution a part (``<classifier>.part<k>``: ``W_k``, the bias on part 0 only)
  at the part's own resolution (on the FC engine where there is one), and for an
  upsampled part an identity convolution (``<classifier>.up<k>``, dense: one pass) that
  reads those ``classes`` maps *through* the upsampling (the record's ``up`` field); each
  writes ``classes`` maps into one region (a :class:`ConcatNode` ``<classifier>.parts``);
- the classifier itself, now a 1x1 convolution over those ``parts * classes`` maps with
  weights 1 that adds them (``[I I I]``), keeping the classifier's activation and its name
  (so its output is still compared with the reference layer's).

Upsampling the ``classes`` maps after the part's classifier, not its hundreds of input
maps before it, is what makes this cheap: the classifier of a part runs at the coarse
resolution, and the upsampling moves ``classes`` maps. In fixed point each part's sum is
requantized to the region's format (one format for every part and its upsampling:
``fmt_group``) before the final sum; the golden model, the cycle model and the RTL run the records as they are, so they
agree bit for bit; the float reference differs by that rounding (``convc compare``).

The pattern needs: a dense 1x1 classifier at stride 1, no padding or pooling, the only
reader of the concatenation; each part a convolution (optionally upsampled by a power of
two) read by nothing else. Anything else is left as written (the upsampling becomes an
identity convolution with ``up``, :mod:`.lower_unfused`).
"""

from __future__ import annotations

import numpy as np

from ..ir import ConcatNode, ConvNode, IRGraph, UpsampleNode


def run(graph: IRGraph) -> IRGraph:
    by_name = {n.name: n for n in graph.nodes}
    readers = graph.readers()
    for cls in list(graph.nodes):
        cat = by_name.get(cls.input) if isinstance(cls, ConvNode) else None
        if not isinstance(cat, ConcatNode) or readers.get(cat.name) != 1:
            continue
        if (cls.kernel, cls.stride, cls.pad, cls.up, cls.pool, cls.table) != (1, 1, 0, 0, None, None):
            continue
        sources = []                 # per part: (producer conv, up)
        for p in cat.parts:
            node, up = by_name[p], 0
            if isinstance(node, UpsampleNode) and readers.get(node.name) == 1:
                node, up = by_name.get(node.input), node.up
            if not isinstance(node, ConvNode) or node.into is not None or readers.get(node.name) != 1:
                break
            sources.append((node, up, by_name[p]))
        else:
            _fold(graph, cls, cat, sources)
            by_name = {n.name: n for n in graph.nodes}
            readers = graph.readers()
    return graph


def _fold(graph: IRGraph, cls: ConvNode, cat: ConcatNode, sources: list) -> None:
    k = cls.out_c
    region = f"{cls.name}.parts"
    parts, made, m0 = [], [], 0
    for i, (producer, up, part) in enumerate(sources):
        c = part.out_shape[0]
        coarse = (k,) + tuple(producer.out_shape[1:])
        cls_i = ConvNode(f"{cls.name}.part{i}", [], input=producer.name, in_c=c, out_c=k, kernel=1,
                         weight=cls.weight[:, m0:m0 + c].copy(),
                         bias=cls.bias.copy() if i == 0 else np.zeros_like(cls.bias), fmt_group=region,
                         in_shape=producer.out_shape, out_shape=coarse)
        made.append(cls_i)
        last = cls_i
        if up:
            # dense (zeros off the diagonal), so one pass upsamples every map: a table of one map
            # an output would be one pass a map, each paying a whole frame's row writes
            last = ConvNode(f"{cls.name}.up{i}", [], input=cls_i.name, in_c=k, out_c=k, kernel=1,
                            weight=np.eye(k).reshape(k, k, 1, 1),
                            bias=np.zeros(k), up=up, keep_fmt=True, in_shape=coarse,
                            out_shape=(k,) + tuple(cls.out_shape[1:]))
            made.append(last)
        last.into, last.into_map0 = region, i * k
        parts.append(last)
        m0 += c
    n = len(parts)
    concat = ConcatNode(region, [], parts=[p.name for p in parts], in_shape=parts[0].out_shape,
                        out_shape=(n * k,) + tuple(cls.out_shape[1:]))
    adder = np.zeros((k, n * k, 1, 1))
    for i in range(n):
        adder[np.arange(k), i * k + np.arange(k), 0, 0] = 1.0
    cls.input, cls.in_c, cls.in_shape = region, n * k, concat.out_shape
    cls.weight, cls.bias = adder, np.zeros_like(cls.bias)
    dropped = {cat.name} | {part.name for _, _, part in sources if isinstance(part, UpsampleNode)}
    nodes = []
    for node in graph.nodes:
        if node is cls:
            nodes += made + [concat]
        if node.name not in dropped:
            nodes.append(node)
    graph.nodes = nodes
    for name in dropped:
        graph.ref_index.pop(name, None)
    graph.notes.append(f"layer {cls.name!r}: the 1x1 classifier over {cat.name!r} ({n} parts, upsampled "
                       f"{[1 << up for _, up, _ in sources]}) runs as one classifier a part at the part's "
                       "resolution, its scores upsampled, then a sum of the parts")
