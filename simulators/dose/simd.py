"""Four-column row operations of the sparse kernels as explicit 4 x float64 vector code.

numba leaves LLVM's SLP vectorizer off, so the four scalar accumulators of a 4-column pass stay
four scalar chains. These intrinsics emit the same arithmetic on ``<4 x double>`` values: per
column, the same products (float32 entry widened to float64, times the float64 fluence) added in
the same entry order, with no fused multiply-add, so every column is bit for bit the single-column
scalar sum; only the four columns now share one vector instruction.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_F64 = ir.DoubleType()
_V4 = ir.VectorType(_F64, 4)
_I64 = ir.IntType(64)


def _splat(builder, value):
    one = builder.insert_element(ir.Constant(_V4, ir.Undefined), value, ir.IntType(32)(0))
    return builder.shuffle_vector(one, ir.Constant(_V4, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), 4), [0] * 4))


def _entry(context, builder, sig, args):
    """Per-entry loaders for (indices, data): index as i64, value as double."""
    ind = context.make_array(sig.args[0])(context, builder, args[0])
    dat = context.make_array(sig.args[1])(context, builder, args[1])
    widen = sig.args[1].dtype == types.float32

    def load(jj):
        idx = builder.load(builder.gep(ind.data, [jj]))
        if idx.type.width < 64:
            idx = builder.zext(idx, _I64)
        v = builder.load(builder.gep(dat.data, [jj]))
        return idx, builder.fpext(v, _F64) if widen else v

    return load


def _row_ptr(context, builder, arr_type, arr_value, idx, c):
    """Pointer to arr[idx, c:c+4] of a C-contiguous float64 (n, k) array, as <4 x double>*."""
    arr = context.make_array(arr_type)(context, builder, arr_value)
    k = cgutils.unpack_tuple(builder, arr.shape, 2)[1]
    ptr = builder.gep(arr.data, [builder.add(builder.mul(idx, k), c)])
    return builder.bitcast(ptr, _V4.as_pointer())


def _i64(context, builder, sig, args, n):
    return context.cast(builder, args[n], sig.args[n], types.int64)


@intrinsic
def dot4(typingctx, indices, data, X, p0, p1, c):
    """(sum over entries jj in [p0, p1) of data[jj] * X[indices[jj], c + t] for t = 0..3)."""
    sig = types.UniTuple(types.float64, 4)(indices, data, X, p0, p1, c)

    def codegen(context, builder, sig, args):
        load = _entry(context, builder, sig, args)
        col = _i64(context, builder, sig, args, 5)
        acc = cgutils.alloca_once_value(builder, ir.Constant(_V4, [0.0] * 4))  # promoted to a register
        start, stop = _i64(context, builder, sig, args, 3), _i64(context, builder, sig, args, 4)
        with cgutils.for_range_slice(builder, start, stop, _I64(1), intp=_I64) as (jj, _):
            idx, v = load(jj)
            x = builder.load(_row_ptr(context, builder, sig.args[2], args[2], idx, col), align=8)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(_splat(builder, v), x)), acc)
        total = builder.load(acc)
        return context.make_tuple(builder, sig.return_type, [builder.extract_element(total, _I64(t)) for t in range(4)])

    return sig, codegen


@intrinsic
def axpy4(typingctx, indices, data, buf, p0, p1, c, g0, g1, g2, g3):
    """buf[indices[jj], c + t] += data[jj] * g_t for entries jj in [p0, p1), t = 0..3."""
    sig = types.void(indices, data, buf, p0, p1, c, g0, g1, g2, g3)

    def codegen(context, builder, sig, args):
        load = _entry(context, builder, sig, args)
        col = _i64(context, builder, sig, args, 5)
        g = ir.Constant(_V4, ir.Undefined)
        for t in range(4):
            gt = context.cast(builder, args[6 + t], sig.args[6 + t], types.float64)
            g = builder.insert_element(g, gt, ir.IntType(32)(t))
        start, stop = _i64(context, builder, sig, args, 3), _i64(context, builder, sig, args, 4)
        with cgutils.for_range_slice(builder, start, stop, _I64(1), intp=_I64) as (jj, _):
            idx, v = load(jj)
            ptr = _row_ptr(context, builder, sig.args[2], args[2], idx, col)
            builder.store(builder.fadd(builder.load(ptr, align=8), builder.fmul(_splat(builder, v), g)), ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen
