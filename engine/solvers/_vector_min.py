"""The first index of the smallest kink: the exact line search's hot scan.

The primal method's line search (:func:`nidecode.solvers.batched._primal_active_set`)
takes the kinks along its direction in increasing order, the first index
first among equal ones, about four per step. Its kinks are float32 values in
``[+0, +inf]``, given as their bits (``int32``): read as integers, they order
as the numbers do, so their minimum is an integer minimum, which vectorises
(a float minimum does not without fast-math, which would change its NaN
rules). Numba then found the first index holding it sixteen values at a time,
each test a horizontal reduction and a branch: two thirds of the time.

Here both passes are LLVM vectors of sixteen ``int32`` (one AVX-512
register): the minimum lane by lane, then the first vector holding it, its
lanes compared at once into a bit mask whose trailing zeros give the index.
The same index as a scalar loop, bit for bit; a call on the 216 kinks of a
whole-brain sphere's pair took 17 ns instead of 41 (the minimum at a random
place).

A numba intrinsic: callable from ``@njit`` code only.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from nidecode.solvers._llvm_ir import call, loop, splat

__all__ = ["INF_BITS", "first_min"]

INF_BITS = 0x7F800000  # float32 +inf as int32 bits
_W = 16  # int32 per vector
_I1, _I32, _I64, _MASK = ir.IntType(1), ir.IntType(32), ir.IntType(64), ir.IntType(_W)
_VI = ir.VectorType(_I32, _W)
_LANES = ir.Constant(ir.VectorType(_I64, _W), list(range(_W)))
_NONE = ir.Constant(_VI, [INF_BITS] * _W)
_SMIN = f"llvm.smin.v{_W}i32"


def _load(b, data, k, n=None):
    """``data[k:k + 16]``; with ``n``, lanes from ``n`` on are not read (+inf)."""
    pointer = b.bitcast(b.gep(data, [k]), _VI.as_pointer())
    if n is None:
        return b.load(pointer, align=4)
    inside = b.icmp_signed("<", b.add(splat(b, k, _LANES.type), _LANES),
                           splat(b, n, _LANES.type))
    return call(b, f"llvm.masked.load.v{_W}i32.p0", _VI,
                [pointer, ir.Constant(_I32, 4), inside, _NONE])


@intrinsic
def first_min(typingctx, bits):
    """The first index holding the smallest of ``bits`` (1-d contiguous ``int32``,
    the bits of float32 values in ``[+0, +inf]``), -1 if none is below ``INF_BITS``."""
    if not (isinstance(bits, types.Array) and bits.dtype == types.int32 and bits.ndim == 1
            and bits.layout == "C"):
        return None
    signature = types.int64(bits)

    def codegen(context, b, signature, args):
        array = context.make_array(signature.args[0])(context, b, value=args[0])
        data, n = array.data, b.extract_value(array.shape, 0)
        width = ir.Constant(_I64, _W)
        whole = b.mul(b.sdiv(n, width), width)
        zero = ir.Constant(_I64, 0)

        def smaller(k, carried):
            return [call(b, _SMIN, _VI, [carried[0], _load(b, data, k)])]

        (lanes,) = loop(b, "min", zero, whole, width, [_NONE], smaller)
        lanes = call(b, _SMIN, _VI, [lanes, _load(b, data, whole, n)])
        smallest = call(b, f"llvm.vector.reduce.smin.v{_W}i32", _I32, [lanes])
        result = cgutils.alloca_once_value(b, ir.Constant(_I64, -1))
        target = splat(b, smallest, _VI)
        done = b.append_basic_block("done")

        def found_in(k, vector):
            """Branch to ``done`` with the index if ``vector`` (at ``k``) holds it."""
            hits = b.bitcast(b.icmp_signed("==", vector, target), _MASK)
            hit, miss = b.append_basic_block("hit"), b.append_basic_block("miss")
            b.cbranch(b.icmp_unsigned("!=", hits, ir.Constant(_MASK, 0)), hit, miss)
            b.position_at_end(hit)
            lane = call(b, f"llvm.cttz.i{_W}", _MASK, [hits, ir.Constant(_I1, 1)])
            b.store(b.add(k, b.zext(lane, _I64)), result)
            b.branch(done)
            b.position_at_end(miss)

        with cgutils.if_likely(b, b.icmp_signed("<", smallest, ir.Constant(_I32, INF_BITS))):
            def search(k, carried):
                found_in(k, _load(b, data, k))
                return carried

            loop(b, "search", zero, whole, width, [], search)
            found_in(whole, _load(b, data, whole, n))
        b.branch(done)
        b.position_at_end(done)
        return b.load(result)

    return signature, codegen
