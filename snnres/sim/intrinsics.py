"""LLVM-level building blocks of the CPU kernels (numba ``@intrinsic``): stack buffers that LLVM
keeps in registers, a window row's weight rows added in 16-lane vectors by a loop LLVM must not
unroll, a vector compare packed into spike bits, and popcount. They emit the same float32
operations as the plain numba loops they replace (no fast-math), so results stay bit-identical."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def stack_f32(typingctx, size):
    """A float32 buffer on the stack; LLVM keeps one of constant size in registers."""
    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float32), size=args[0])
    return types.CPointer(types.float32)(size), codegen


def _splat(builder, value):
    """A float32 ``value`` in all 16 lanes of a vector."""
    vector = ir.VectorType(ir.FloatType(), 16)
    one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), 16), [0] * 16))


def _no_unroll(module):
    """Loop metadata: neither unrolled nor vectorised (interleaved)."""
    loop_id = module.add_metadata([ir.MetaDataString(module, "snnres.rows"),
                                   module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")]),
                                   module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.enable"),
                                                        ir.Constant(ir.IntType(1), 0)])])
    loop_id.operands = (loop_id,) + tuple(loop_id.operands[1:])  # a loop ID refers to itself
    return loop_id


@intrinsic
def add_rows(typingctx, acc, w, code, val, start, stop, shift, scaled, width):
    """``acc[o] += (val[j] *) w[code[j] + shift, o]`` (``o < width``) for ``start <= j < stop``: the same float32
    operations, mul then add, as the scalar loop, in vectors of 16 lanes (``width`` a literal
    multiple of 16; ``w`` C-contiguous with rows of ``width``). Written out because LLVM fully
    unrolls the scalar loop into scalars for 32 lanes (4-8x slower than 64), and emitted as one loop
    that LLVM must not unroll: a window row holds a handful of events, and the runtime-unrolled
    loop (a remainder loop, then four at a time) cost a second mispredicted exit per row (12-21%
    on layers of 32-128 input channels)."""
    if not isinstance(width, types.IntegerLiteral) or not isinstance(scaled, types.BooleanLiteral):
        return None
    lanes, multiply = width.literal_value, scaled.literal_value
    vector = ir.VectorType(ir.FloatType(), 16)
    i64 = ir.IntType(64)

    def codegen(context, builder, signature, args):
        acc_val, w_val, code_val, val_val, start_val, stop_val, shift_val = args[:7]
        acc_ptr = context.make_array(signature.args[0])(context, builder, acc_val).data
        w_data = context.make_array(signature.args[1])(context, builder, w_val).data
        code_ptr = context.make_array(signature.args[2])(context, builder, code_val).data
        val_ptr = context.make_array(signature.args[3])(context, builder, val_val).data
        entry = builder.block
        body = builder.append_basic_block("rows.body")
        done = builder.append_basic_block("rows.done")
        builder.cbranch(builder.icmp_signed("<", start_val, stop_val), body, done)
        builder.position_at_end(body)
        j = builder.phi(i64)
        j.add_incoming(start_val, entry)
        row = builder.add(builder.load(builder.gep(code_ptr, [j])), shift_val)
        row_ptr = builder.gep(w_data, [builder.mul(row, ir.Constant(i64, lanes))])
        if multiply:
            factor = _splat(builder, builder.load(builder.gep(val_ptr, [j])))
        for part in range(lanes // 16):
            offset = [ir.Constant(i64, 16 * part)]
            a = builder.bitcast(builder.gep(acc_ptr, offset), vector.as_pointer())
            b = builder.load(builder.bitcast(builder.gep(row_ptr, offset), vector.as_pointer()), align=4)
            if multiply:
                b = builder.fmul(factor, b)
            builder.store(builder.fadd(builder.load(a, align=4), b), a, align=4)
        j_next = builder.add(j, ir.Constant(i64, 1))
        j.add_incoming(j_next, builder.block)
        latch = builder.cbranch(builder.icmp_signed("<", j_next, stop_val), body, done)
        latch.set_metadata("llvm.loop", _no_unroll(builder.module))
        builder.position_at_end(done)
        return context.get_dummy_value()
    return types.void(acc, w, code, val, start, stop, shift, scaled, width), codegen


@intrinsic
def stack_i32(typingctx, size):
    """An int32 buffer on the stack (``stack_f32``)."""
    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.int32), size=args[0])
    return types.CPointer(types.int32)(size), codegen


@intrinsic
def ge_bits(typingctx, h, threshold, width):
    """The bits ``h[o] >= threshold`` (bit ``o``, ``o < width``, a literal multiple of 16 up to 64) as a
    uint64: one vector compare and mask move per 16 lanes (the scalar loop ``word |= spike << o``
    vectorises to 64-bit lanes)."""
    if not isinstance(width, types.IntegerLiteral):
        return None
    lanes = width.literal_value
    vector = ir.VectorType(ir.FloatType(), 16)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        limit = _splat(builder, args[1])
        word = ir.Constant(ir.IntType(64), 0)
        for part in range(lanes // 16):
            h_vec = builder.load(builder.bitcast(builder.gep(data, [ir.Constant(ir.IntType(64), 16 * part)]),
                                                 vector.as_pointer()), align=4)
            bits = builder.zext(builder.bitcast(builder.fcmp_ordered(">=", h_vec, limit), ir.IntType(16)),
                                ir.IntType(64))
            word = builder.or_(word, builder.shl(bits, ir.Constant(ir.IntType(64), 16 * part)))
        return word
    return types.uint64(h, threshold, width), codegen


@intrinsic
def popcount(typingctx, word):
    """The number of set bits of a uint64 (``llvm.ctpop``)."""
    def codegen(context, builder, signature, args):
        return builder.zext(builder.ctpop(args[0]), context.get_value_type(types.int64))
    return types.int64(types.uint64), codegen
