"""LLVM-level building blocks of the CPU kernels (numba ``@intrinsic``): stack buffers that LLVM
keeps in registers, a window row's weight rows added in 16-lane vectors by a loop LLVM must not
unroll, a vector compare packed into spike bits, the positions of a word's set bits without a
branch, and popcount. They emit the same float32 operations as the plain numba loops they replace
(no fast-math), so results stay bit-identical."""

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


def _splat(builder, value, kind=None):
    """``value`` (float32, or of LLVM type ``kind``) in all 16 lanes of a vector."""
    vector = ir.VectorType(kind or ir.FloatType(), 16)
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


def _add_row(context, builder, signature, args, j, shift, lanes, multiply):
    """``acc[o] += (val[j] *) w[code[j] + shift, o]`` for ``o < lanes``, in 16-lane vectors (the first four
    arguments of ``args``: ``acc, w, code, val``)."""
    vector = ir.VectorType(ir.FloatType(), 16)
    i64 = ir.IntType(64)
    acc_ptr, w_data, code_ptr, val_ptr = (context.make_array(signature.args[k])(context, builder, args[k]).data
                                          for k in range(4))
    code = builder.load(builder.gep(code_ptr, [j]))
    row = builder.add(builder.sext(code, i64) if code.type.width < 64 else code, shift)  # int32 or int64 codes
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


def _counted_loop(builder, count, body):
    """``for i in range(count): body(i)`` as one loop that LLVM must neither unroll nor interleave."""
    i64 = ir.IntType(64)
    entry = builder.block
    loop = builder.append_basic_block("rows.body")
    done = builder.append_basic_block("rows.done")
    builder.cbranch(builder.icmp_signed(">", count, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    body(i)
    i_next = builder.add(i, ir.Constant(i64, 1))
    i.add_incoming(i_next, builder.block)
    latch = builder.cbranch(builder.icmp_signed("<", i_next, count), loop, done)
    latch.set_metadata("llvm.loop", _no_unroll(builder.module))
    builder.position_at_end(done)


def _literals(scaled, width):
    return isinstance(width, types.IntegerLiteral) and isinstance(scaled, types.BooleanLiteral)


@intrinsic
def add_rows(typingctx, acc, w, code, val, start, stop, shift, scaled, width):
    """``acc[o] += (val[j] *) w[code[j] + shift, o]`` (``o < width``) for ``start <= j < stop``: the same float32
    operations, mul then add, as the scalar loop, in vectors of 16 lanes (``width`` a literal
    multiple of 16; ``w`` C-contiguous with rows of ``width``). Written out because LLVM fully
    unrolls the scalar loop into scalars for 32 lanes (4-8x slower than 64), and emitted as one loop
    that LLVM must not unroll: a window row holds a handful of events, and the runtime-unrolled
    loop (a remainder loop, then four at a time) cost a second mispredicted exit per row (12-21%
    on layers of 32-128 input channels)."""
    if not _literals(scaled, width):
        return None

    def codegen(context, builder, signature, args):
        start, stop, shift = args[4:7]
        _counted_loop(builder, builder.sub(stop, start), lambda i: _add_row(
            context, builder, signature, args, builder.add(start, i), shift, width.literal_value,
            scaled.literal_value))
        return context.get_dummy_value()
    return types.void(acc, w, code, val, start, stop, shift, scaled, width), codegen


@intrinsic
def add_three_rows(typingctx, acc, w, code, val, starts, stops, shifts, scaled, width):
    """``add_rows`` for three ranges in turn (``starts``, ``stops``, ``shifts``: 3-tuples; an empty range is
    ``start == stop``), in one loop: a 3x3 window's rows cost one mispredicted loop exit instead of
    three (a conv of 32 inputs at 5% activity, ~5 events a row: 25-30% faster). Event ``i`` of the
    joined ranges picks its range with two compares and selects, no branch."""
    if not _literals(scaled, width) or not all(isinstance(t, types.UniTuple) and t.count == 3
                                               for t in (starts, stops, shifts)):
        return None

    def codegen(context, builder, signature, args):
        s0, s1, s2 = (builder.extract_value(args[4], k) for k in range(3))
        e0, e1, e2 = (builder.extract_value(args[5], k) for k in range(3))
        h0, h1, h2 = (builder.extract_value(args[6], k) for k in range(3))
        end0 = builder.sub(e0, s0)  # the joined index where ranges 1 and 2 begin
        end1 = builder.add(end0, builder.sub(e1, s1))
        count = builder.add(end1, builder.sub(e2, s2))
        d0, d1, d2 = s0, builder.sub(s1, end0), builder.sub(s2, end1)  # event j = i + d

        def body(i):
            first, second = builder.icmp_signed("<", i, end0), builder.icmp_signed("<", i, end1)
            d = builder.select(first, d0, builder.select(second, d1, d2))
            h = builder.select(first, h0, builder.select(second, h1, h2))
            _add_row(context, builder, signature, args, builder.add(i, d), h, width.literal_value,
                     scaled.literal_value)
        _counted_loop(builder, count, body)
        return context.get_dummy_value()
    return types.void(acc, w, code, val, starts, stops, shifts, scaled, width), codegen


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


SET_BITS_SLACK = 32  # entries ``set_bits32`` may write past the last set bit's


@intrinsic
def set_bits32(typingctx, half, out, pos, scale, offset):
    """``out[pos + i] = b_i * scale + offset`` (int32) for the set bits ``b_0 < b_1 < ...`` of the uint32
    ``half``; returns their number. Branch-free: the bit indices are packed by one vector compress
    (``llvm.experimental.vector.compress``: one ``vpcompressb`` with AVX-512 VBMI2), then 16 (32 if more
    than 16 bits are set) entries are stored, so ``out`` needs ``SET_BITS_SLACK`` entries past the
    last. A loop over the bits (``trailing_zeros``) mispredicts its exit about once a call, which at
    a few set bits a word cost ~3/4 of ``bits.bits_to_sites``' time."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    bytes32, mask32, ints16 = ir.VectorType(ir.IntType(8), 32), ir.VectorType(ir.IntType(1), 32), ir.VectorType(i32, 16)

    def codegen(context, builder, signature, args):
        word, out_val, pos_val, scale_val, offset_val = args
        data = context.make_array(signature.args[1])(context, builder, out_val).data
        compress = cgutils.get_or_insert_function(builder.module, ir.FunctionType(bytes32, [bytes32, mask32, bytes32]),
                                                  "llvm.experimental.vector.compress.v32i8")
        bits = builder.trunc(word, i32)
        packed = builder.call(compress, [ir.Constant(bytes32, list(range(32))), builder.bitcast(bits, mask32),
                                         ir.Constant(bytes32, [0] * 32)])
        count = builder.zext(builder.ctpop(bits), i64)
        scale, offset = (_splat(builder, builder.trunc(v, i32), i32) for v in (scale_val, offset_val))
        for part in range(2):
            lanes = builder.shuffle_vector(packed, ir.Constant(bytes32, ir.Undefined),
                                           ir.Constant(ints16, list(range(16 * part, 16 * part + 16))))
            entries = builder.add(builder.mul(builder.zext(lanes, ints16), scale), offset)
            target = builder.bitcast(builder.gep(data, [builder.add(pos_val, ir.Constant(i64, 16 * part))]),
                                     ints16.as_pointer())
            if part == 0:
                builder.store(entries, target, align=4)
            else:
                with builder.if_then(builder.icmp_signed(">", count, ir.Constant(i64, 16)), likely=False):
                    builder.store(entries, target, align=4)
        return count
    return types.int64(half, out, pos, scale, offset), codegen
