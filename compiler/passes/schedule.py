"""Tiling and scheduling: IR nodes -> instruction records and memory image.

Memory map (16-bit words)::

    0               PWL tables (isa.TABLE_WORDS each)
    ...             per pass: input-map list, weights, biases (isa layout)
    input           the network input (C, H, W)
    per node        its output maps; LCN nodes also a scratch region

A convolution is split into passes the engine can hold:

- outputs are grouped by the set of input maps they read (all of them for a
  dense layer; a connection table's rows), and each group is cut into
  chunks of at most ``hw.out_lanes`` maps;
- each chunk's rows are cut into bands whose partial sums fit the
  ``hw.psum_words`` buffer of an output lane:
  ``((rows - 1) * pool_s + pool_k) * conv_w <= psum_words``.

One record per (chunk, band); the input maps stream through
``ceil(n_in / hw.in_lanes)`` times per record, accumulating on chip.
``OP_FC`` records (:func:`on_fc`; :func:`fc_eligible` is the one test of which
layers the fully connected engine can run) get their weights input-major (see
:mod:`~convc.compiler.isa`), ``OP_CONV`` records output-major.
"""

from __future__ import annotations

import numpy as np

from convc.errors import ConvcError

from .. import isa
from ..hwconfig import HardwareConfig
from ..ir import ConcatNode, ConvNode, IRGraph, LCNNode
from ..program import Program, Region

_ACT = {None: isa.ACT_NONE, "relu": isa.ACT_RELU, "abs": isa.ACT_ABS, "tanh": isa.ACT_PWL}
_POOL = {None: isa.POOL_NONE, "max": isa.POOL_MAX, "avg": isa.POOL_AVG}


def output_groups(node: ConvNode, out_lanes: int) -> list[tuple[list[int], list[int]]]:
    """(outputs, input list) per pass chunk: outputs sharing their input set."""
    groups: dict[tuple[int, ...], list[int]] = {}
    if node.table is None:                  # dense: every output reads every input map
        groups[tuple(range(node.in_c))] = list(range(node.out_c))
    else:
        for o in range(node.out_c):
            groups.setdefault(tuple(sorted(node.inputs_of(o))), []).append(o)
    chunks = []
    for inputs, outs in groups.items():
        inputs = list(inputs)    # one list shared by the group's chunks
        for run in _runs(outs):  # a record writes maps o0 .. o0+n_out-1
            for k in range(0, len(run), out_lanes):
                chunks.append((run[k:k + out_lanes], inputs))
    return chunks


def fc_eligible(node: ConvNode) -> bool:
    """Can the fully connected engine run this node: a 1x1 convolution at stride 1, without
    padding, pooling or upsampling (``OP_FC``)? The size pass and :func:`on_fc` both ask this."""
    return node.kernel == 1 and node.stride == 1 and node.pad == 0 and node.pool is None and node.up == 0


def on_fc(node: ConvNode, hw: HardwareConfig) -> bool:
    """Does the fully connected engine run this node (``hw`` has one, and the node is
    :func:`fc_eligible`)?"""
    return hw.has_fc and fc_eligible(node)


def band_rows(node: ConvNode, hw: HardwareConfig) -> int:
    """Final output rows per pass so that the partial sums fit on chip."""
    _, conv_h, conv_w = node.conv_shape
    if on_fc(node, hw):
        if conv_w > hw.fc_psum_words:
            raise ConvcError(f"layer {node.name!r}: a row of {conv_w} outputs exceeds the {hw.fc_psum_words} "
                             "accumulators of the fully connected engine")
        return max(1, min(node.out_shape[1], hw.fc_psum_words // conv_w))
    pk = node.pool.kernel if node.pool else 1
    ps = node.pool.stride if node.pool else 1
    out_h = node.out_shape[1]
    if pk * conv_w > hw.psum_words:
        raise ConvcError(f"layer {node.name!r}: one band needs {pk * conv_w} partial sums per lane, the "
                         f"configuration holds {hw.psum_words}")
    rows = (hw.psum_words // conv_w - pk) // ps + 1
    return max(1, min(out_h, rows))


def consecutive(inputs: list[int]) -> bool:
    """Is a (sorted) input-map list a run of consecutive maps? The hardware then needs
    only its first entries (see ``list_words`` in :mod:`~convc.compiler.hwconfig`)."""
    return not inputs or inputs[-1] - inputs[0] + 1 == len(inputs)


def long_list(node: ConvNode, list_words: int) -> tuple[int, list[int]] | None:
    """The first output of ``node`` whose input-map list the hardware cannot hold (longer
    than ``list_words`` and not consecutive), with that list; None if every list fits."""
    if node.table is None:
        return None                                # every output reads 0 .. in_c-1
    for o in range(node.out_c):
        inputs = sorted(node.inputs_of(o))
        if len(inputs) > list_words and not consecutive(inputs):
            return o, inputs
    return None


def _check_fits(node, hw: HardwareConfig):
    if isinstance(node, ConvNode):
        bad = long_list(node, hw.list_words)
        if bad is not None:
            o, inputs = bad
            raise ConvcError(f"layer {node.name!r}: output map {o} reads {len(inputs)} input maps that are "
                             f"not consecutive; the input-map list memory holds {hw.list_words} (a longer "
                             "list must be a run of consecutive maps)")
    if isinstance(node, ConvNode) and on_fc(node, hw):
        if node.out_shape[2] > hw.max_width:
            raise ConvcError(f"layer {node.name!r}: output row of {node.out_shape[2]} words > output row "
                             f"buffer {hw.max_width}")
    elif isinstance(node, ConvNode):
        if node.kernel > hw.kmax:
            raise ConvcError(f"layer {node.name!r}: kernel {node.kernel} > configured kmax {hw.kmax}")
        width = node.padded_width
        if width > hw.max_width:
            raise ConvcError(f"layer {node.name!r}: padded row of {width} words > line buffer {hw.max_width}")
        s_max, p_max, ps_max = isa.limit("stride")[1], isa.limit("pad")[1], isa.limit("pool_s")[1]
        if node.stride > s_max or node.pad > p_max:
            raise ConvcError(f"layer {node.name!r}: stride must be <= {s_max} and padding <= {p_max}")
        if node.pool and (node.pool.kernel > hw.pool_kmax or node.pool.stride > ps_max):
            raise ConvcError(f"layer {node.name!r}: pooling window {node.pool.kernel} > configured "
                             f"{hw.pool_kmax}, or stride {node.pool.stride} > {ps_max}")
    elif isinstance(node, LCNNode):
        if node.kernel > hw.lcn_kmax or node.in_shape[0] > hw.lcn_channels:
            raise ConvcError(f"layer {node.name!r}: LCN window {node.kernel} or {node.in_shape[0]} maps exceed "
                             f"the configured {hw.lcn_kmax} and {hw.lcn_channels}")
        if node.in_shape[2] + node.kernel - 1 > hw.max_width:
            raise ConvcError(f"layer {node.name!r}: row too long for the LCN line buffers")


def _tables(graph: IRGraph) -> tuple[list, dict[int, int]]:
    """Distinct PWL tables in order of use, and the id of each by object id."""
    tables, ids, seen = [], {}, {}
    for node in graph.nodes:
        q = getattr(node, "quant", None)
        found = []
        if isinstance(node, ConvNode) and q.pwl is not None:
            found = [q.pwl]
        elif isinstance(node, LCNNode):
            found = [q.sqrt_pwl, q.recip_pwl]
        for t in found:
            key = repr(t.to_json())
            if key not in seen:
                seen[key] = len(tables)
                tables.append(t)
            ids[id(t)] = seen[key]
    return tables, ids


def _signed_words(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64) & 0xFFFF


def run(graph: IRGraph, hw: HardwareConfig, fill: bool = True) -> Program:
    """Lay out memory and emit the records; ``fill=False`` skips the image
    contents (sizes and addresses only; used when searching configurations)."""
    tables, table_ids = _tables(graph)
    if len(tables) > hw.pwl_tables:
        raise ConvcError(f"the network needs {len(tables)} PWL tables, the hardware holds {hw.pwl_tables}")
    for node in graph.nodes:
        _check_fits(node, hw)

    # --- constant image: tables, then per pass lists and weights ---------------
    chunks_of: dict[str, list] = {}
    addr = len(tables) * isa.TABLE_WORDS
    by_name = {n.name: n for n in graph.nodes}
    for node in graph.nodes:
        if isinstance(node, ConvNode) and node.share is not None:
            _check_shared(node, by_name[node.share])
            chunks_of[node.name] = chunks_of[node.share]       # the owner's words, stored once
        elif isinstance(node, ConvNode):
            chunks = []
            fc = on_fc(node, hw)
            for outs, inputs in output_groups(node, hw.fc_out_lanes if fc else hw.out_lanes):
                list_addr = addr
                w_addr = list_addr + len(inputs)
                if fc:  # aligned input-major columns (isa.py), read a beat at a time
                    w_addr = -(-w_addr // isa.FC_ALIGN) * isa.FC_ALIGN
                addr = w_addr + isa.weight_words(isa.OP_FC if fc else isa.OP_CONV, len(inputs), len(outs),
                                                 node.kernel)
                chunks.append((outs, inputs, list_addr, w_addr))
            chunks_of[node.name] = chunks
        elif isinstance(node, LCNNode):
            chunks_of[node.name] = [addr]
            addr += node.kernel ** 2 + 2 * node.kernel  # window, then its row and column factors
    image_words = addr

    # --- activations -----------------------------------------------------------
    bits = graph.input_fmt.width
    in_region = Region("input", image_words, tuple(graph.input_shape), graph.input_fmt)
    addr = image_words + in_region.words
    regions, scratch, region_of = [], {}, {None: in_region}
    for node in graph.nodes:
        if isinstance(node, ConvNode) and node.into is not None:
            continue                               # it writes into its concatenation's region
        fmt = node.fmt if isinstance(node, ConcatNode) else \
            node.quant.out_fmt if isinstance(node, ConvNode) else node.quant.y_fmt
        regions.append(Region(node.name, addr, tuple(node.out_shape), fmt))
        region_of[node.name] = regions[-1]
        addr += regions[-1].words
        if isinstance(node, LCNNode):
            c, h, w = node.in_shape
            scratch[node.name] = addr
            addr += (c + 1) * h * w
    memory_words = addr

    image = np.zeros(image_words if fill else 0, dtype=np.int64)
    if fill:
        for i, t in enumerate(tables):
            image[i * isa.TABLE_WORDS:(i + 1) * isa.TABLE_WORDS] = isa.table_words(t)

    # --- records ---------------------------------------------------------------
    instrs, names = [], []
    for node in graph.nodes:
        if isinstance(node, ConcatNode):
            continue                               # its parts wrote it
        src = region_of[node.input]
        dst = region_of[node.into if isinstance(node, ConvNode) and node.into is not None else node.name]
        if isinstance(node, ConvNode):
            q = node.quant
            map0 = node.into_map0 if node.into is not None else 0
            rows_per = band_rows(node, hw)
            c, h, w = node.in_shape
            for outs, inputs, list_addr, w_addr in chunks_of[node.name]:
                if fill and node.share is None:
                    image[list_addr:list_addr + len(inputs)] = inputs
                    words = isa.weight_image(isa.OP_FC if on_fc(node, hw) else isa.OP_CONV,
                                             q.weight[np.ix_(outs, inputs)], q.bias[outs])
                    image[w_addr:w_addr + len(words)] = words
                for row0 in range(0, node.out_shape[1], rows_per):
                    rows = min(rows_per, node.out_shape[1] - row0)
                    instrs.append(isa.Instr(
                        op=isa.OP_FC if on_fc(node, hw) else isa.OP_CONV, bits=bits, act=_ACT[node.act.kind if node.act else None],
                        pool=_POOL[node.pool.kind if node.pool else None], kernel=node.kernel,
                        stride=node.stride, pad=node.pad,
                        pool_k=node.pool.kernel if node.pool else 1,
                        pool_s=node.pool.stride if node.pool else 1,
                        pwl_id=table_ids[id(q.pwl)] if q.pwl is not None else 0,
                        in_c=c, in_h=h, in_w=w, out_h=node.out_shape[1], out_w=node.out_shape[2],
                        n_in=len(inputs), n_out=len(outs), o0=map0 + outs[0], row0=row0, rows=rows, up=node.up,
                        in_addr=src.addr, out_addr=dst.addr,
                        w_addr=w_addr,
                        list_addr=list_addr, bias_shift=q.bias_shift, acc_shift=q.acc_shift,
                        avg_mul=q.avg_mul, avg_shift=q.avg_shift))
                    names.append(dst.name)
        else:
            q = node.quant
            c, h, w = node.in_shape
            w_addr = chunks_of[node.name][0]
            if fill:
                k2 = node.kernel ** 2
                image[w_addr:w_addr + k2] = _signed_words(q.window.reshape(-1))
                image[w_addr + k2:w_addr + k2 + node.kernel] = _signed_words(q.row_taps)
                image[w_addr + k2 + node.kernel:w_addr + k2 + 2 * node.kernel] = _signed_words(q.col_taps)
            instrs.append(isa.Instr(
                op=isa.OP_LCN, bits=bits, kernel=node.kernel, in_c=c, in_h=h, in_w=w, out_h=h, out_w=w,
                in_addr=src.addr, out_addr=dst.addr, w_addr=w_addr, scratch_addr=scratch[node.name],
                pwl_id=table_ids[id(q.sqrt_pwl)], pwl2_id=table_ids[id(q.recip_pwl)], acc_shift=q.g_frac,
                sq_shift=2 * q.x_fmt.frac - q.sq_fmt.frac, s2_shift=q.g_frac,
                y_shift=q.x_fmt.frac + q.r_fmt.frac - q.y_fmt.frac, mean_mul=q.mean_mul,
                mean_shift=q.mean_shift, eps=q.eps))
            names.append(node.name)
    instrs.append(isa.Instr(op=isa.OP_END, bits=bits))
    names.append("end")
    return Program(hw=hw, instrs=instrs, names=names, image=image, memory_words=memory_words,
                   table_addr=0, n_tables=len(tables), input=in_region, output=regions[-1], layers=regions,
                   input_mean=list(graph.input_mean), input_std=list(graph.input_std),
                   meta={"name": graph.name, "bits": bits, "classes": graph.classes, "notes": graph.notes,
                         # the reference layer whose output each region holds (for comparisons)
                         # (None: a region the compiler made, such as a folded classifier's parts)
                         "ref_layers": {n.name: n.sources[-1] if n.sources else None for n in graph.nodes
                                        if n.name in region_of}})


def _check_shared(node: ConvNode, owner: ConvNode) -> None:
    """Records of ``node`` read ``owner``'s weight words: they must be the same codes."""
    a, b = node.quant, owner.quant
    same = (a.w_fmt == b.w_fmt and a.bias_frac == b.bias_frac and np.array_equal(a.weight, b.weight)
            and np.array_equal(a.bias, b.bias) and node.table == owner.table and node.kernel == owner.kernel)
    if not same:
        raise ConvcError(f"layer {node.name!r} shares the weights of {owner.name!r}, but its quantized weights or "
                         "biases differ (their input formats differ); the compiler stores shared weights once")


def _runs(outs: list[int]) -> list[list[int]]:
    """Split output indices into runs of consecutive maps (a record writes o0..o0+n_out-1)."""
    runs = [[outs[0]]]
    for o in outs[1:]:
        if o == runs[-1][-1] + 1:
            runs[-1].append(o)
        else:
            runs.append([o])
    return runs


__all__ = ["run", "output_groups", "band_rows", "fc_eligible", "on_fc"]
