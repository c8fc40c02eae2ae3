"""The two passes of an SMO iteration over the active set, each fused with its selection.

Each iteration of libsvm's SMO (:mod:`nidecode.solvers.libsvm`) updates the
gradient of every active variable, then scans them for the working set: the
maximal violation and the *last* index reaching it (``>=``), then the smallest
second-order gain and the last index reaching it (``<=``). Written as numba
loops these are four passes, and the two scans stay scalar: an extremum and
its index are two coupled recurrences LLVM does not vectorise, and a float
maximum is only reordered under fast-math flags that would change the SMO's
arithmetic too. Each scan must also wait for the whole pass before it, and on
the SMO's active sets (20 to 200 variables) those waits, not the arithmetic,
set the pace.

Here each scan is fused into the pass before it, in LLVM vectors (four
doubles): lanes keep their own extremum and last index, merged at the end.
The arithmetic is the loops' own, operation for operation in the same order
(``fmul``/``fadd`` without contraction), so the SMO's iterates are the same bit
for bit; only the order in which lanes compare changes, and the last index
reaching an extremum does not depend on it. An iteration of the near-tie refits
on whole-brain spheres took 20 % less time (157 -> 126 ns, ~7 500 iterations a fit).

Numba intrinsics: callable from ``@njit`` code only; arrays contiguous and
1-d, ``n`` no larger than any of them (``qb`` holds ``n`` values from each
offset); no NaN.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from nidecode.solvers._llvm_ir import call, loop, splat

__all__ = ["gain_select", "update_select"]

_W = 4  # doubles per vector: one 256-bit register
_F64, _F32, _I64, _I32 = ir.DoubleType(), ir.FloatType(), ir.IntType(64), ir.IntType(32)
_VF, _VF32, _VI = ir.VectorType(_F64, _W), ir.VectorType(_F32, _W), ir.VectorType(_I64, _W)
_LANES = ir.Constant(_VI, list(range(_W)))
_NONE = ir.Constant(_VI, [-1] * _W)


def _constant(value, vector_type=_VF):
    return ir.Constant(vector_type, [value] * _W)


def _load(b, base, k, vector_type, mask):
    """``base[k:k + 4]``; lanes outside ``mask`` (None: all in) are not read."""
    pointer = b.bitcast(b.gep(base, [k]), vector_type.as_pointer())
    if mask is None:
        return b.load(pointer, align=4)
    kind = "v4f64" if vector_type == _VF else "v4f32"
    return call(b, f"llvm.masked.load.{kind}.p0", vector_type,
                [pointer, ir.Constant(_I32, 4), mask, _constant(0.0, vector_type)])


def _store(b, value, base, k, mask):
    pointer = b.bitcast(b.gep(base, [k]), _VF.as_pointer())
    if mask is None:
        b.store(value, pointer, align=4)
    else:
        call(b, "llvm.masked.store.v4f64.p0", ir.VoidType(),
             [value, pointer, ir.Constant(_I32, 4), mask])


def _over_blocks(b, n, body, start):
    """``carried = body(k, mask, carried)`` for k = 0, 4, ... below ``n``: whole
    vectors (``mask`` None), then one masked vector for the rest. Returns the
    values carried out."""
    width = ir.Constant(_I64, _W)
    whole = b.mul(b.sdiv(n, width), width)
    carried = loop(b, "blocks", ir.Constant(_I64, 0), whole, width, start,
                   lambda k, values: body(k, None, values))
    inside = b.icmp_signed("<", b.add(splat(b, whole, _VI), _LANES), splat(b, n, _VI))
    return body(whole, inside, carried)


def _track(b, values, k, mask, best, where, largest: bool):
    """Each lane takes a value ``>=`` (``<=``) its extremum, with its index."""
    take = b.fcmp_ordered(">=" if largest else "<=", values, best)
    if mask is not None:
        take = b.and_(take, mask)
    index = b.add(splat(b, k, _VI), _LANES)
    return b.select(take, values, best), b.select(take, index, where)


def _maximum(b, vector):
    """The largest lane (exact: no NaN, and which zero is kept is moot)."""
    return call(b, "llvm.vector.reduce.fmax.v4f64", _F64, [vector], flags=("nnan", "nsz"))


def _merge(b, best, where, largest: bool):
    """The lanes' extremum and the largest index among the lanes reaching it: two
    rounds of pairing each lane with another (a lane takes its partner's value if
    larger (smaller), or equal with a larger index)."""
    op = ">" if largest else "<"
    for pairing in ([2, 3, 0, 1], [1, 0, 3, 2]):
        order = ir.Constant(ir.VectorType(_I32, _W), pairing)
        other = b.shuffle_vector(best, ir.Constant(_VF, ir.Undefined), order)
        other_where = b.shuffle_vector(where, ir.Constant(_VI, ir.Undefined), order)
        later = b.and_(b.fcmp_ordered("==", other, best),
                       b.icmp_signed(">", other_where, where))
        take = b.or_(b.fcmp_ordered(op, other, best), later)
        best = b.select(take, other, best)
        where = b.select(take, other_where, where)
    zero = ir.Constant(_I32, 0)
    return b.extract_element(best, zero), b.extract_element(where, zero)


def _data(context, b, array_type, value):
    return context.make_array(array_type)(context, b, value=value).data


def _int(context, b, value, value_type):
    return context.cast(b, value, value_type, types.int64)


@intrinsic
def update_select(typingctx, F, pen_up, pen_low, qb, oi, oj, e_i, e_j, n):
    """The gradient update, then the maximal violations.

    ``F[t] -= qb[oi + t] * e_i + qb[oj + t] * e_j`` for ``t < n``, then
    ``(max_t F[t] + pen_up[t], the last t reaching it, max_t pen_low[t] - F[t])``:
    libsvm's ``Gmax``, its index and ``Gmax2`` on the updated gradient
    (``(-inf, -1, -inf)`` if ``n == 0``). ``qb``: float32, the others float64;
    ``e_i = e_j = 0`` leaves ``F`` as it is and only selects.
    """
    signature = types.Tuple((types.float64, types.int64, types.float64))(
        F, pen_up, pen_low, qb, oi, oj, e_i, e_j, n)

    def codegen(context, b, signature, args):
        kinds = signature.args
        f_data, up_data, low_data, q_data = (_data(context, b, kinds[a], args[a])
                                             for a in range(4))
        row_i, row_j = _int(context, b, args[4], kinds[4]), _int(context, b, args[5], kinds[5])
        step_i, step_j = splat(b, args[6], _VF), splat(b, args[7], _VF)
        count = _int(context, b, args[8], kinds[8])
        minus_inf = _constant(float("-inf"))

        def body(k, mask, carried):
            best, where, best2 = carried
            kernel_i = b.fpext(_load(b, q_data, b.add(row_i, k), _VF32, mask), _VF)
            kernel_j = b.fpext(_load(b, q_data, b.add(row_j, k), _VF32, mask), _VF)
            f = b.fsub(_load(b, f_data, k, _VF, mask),
                       b.fadd(b.fmul(kernel_i, step_i), b.fmul(kernel_j, step_j)))
            _store(b, f, f_data, k, mask)
            violation = b.fadd(f, _load(b, up_data, k, _VF, mask))
            best, where = _track(b, violation, k, mask, best, where, largest=True)
            low = b.fsub(_load(b, low_data, k, _VF, mask), f)
            if mask is not None:
                low = b.select(mask, low, minus_inf)
            best2 = b.select(b.fcmp_ordered(">", low, best2), low, best2)
            return [best, where, best2]

        best, where, best2 = _over_blocks(b, count, body, [minus_inf, _NONE, minus_inf])
        gmax, i = _merge(b, best, where, largest=True)
        gmax2 = _maximum(b, best2)
        return context.make_tuple(b, signature.return_type, [gmax, i, gmax2])

    return signature, codegen


@intrinsic
def gain_select(typingctx, F, QD, pen_low, qb, oi, gmax, qd_i, tau, n):
    """libsvm's second-order working-set selection (WSS2) for ``j``.

    For ``t < n``: ``d = gmax - F[t]``, ``q = qd_i + QD[t] - 2 qb[oi + t]`` (``tau``
    where not positive), ``OD[t] = -(d * d) / q - pen_low[t]`` (``+inf`` where
    ``d <= 0``). Returns ``(min OD, the last t reaching it)``, ``(inf, -1)`` if
    ``n == 0``. ``qb``: float32, the arrays float64.
    """
    signature = types.Tuple((types.float64, types.int64))(F, QD, pen_low, qb, oi, gmax, qd_i,
                                                          tau, n)

    def codegen(context, b, signature, args):
        kinds = signature.args
        f_data, qd_data, low_data, q_data = (_data(context, b, kinds[a], args[a])
                                             for a in range(4))
        row_i = _int(context, b, args[4], kinds[4])
        top, diagonal, floor = (splat(b, args[a], _VF) for a in (5, 6, 7))
        count = _int(context, b, args[8], kinds[8])
        zero, infinity = _constant(0.0), _constant(float("inf"))

        def body(k, mask, carried):
            best, where = carried
            grad_diff = b.fsub(top, _load(b, f_data, k, _VF, mask))
            kernel = b.fpext(_load(b, q_data, b.add(row_i, k), _VF32, mask), _VF)
            quad_coef = b.fsub(b.fadd(diagonal, _load(b, qd_data, k, _VF, mask)),
                               b.fmul(_constant(2.0), kernel))
            quad_coef = b.select(b.fcmp_ordered(">", quad_coef, zero), quad_coef, floor)
            gain = b.fdiv(b.fneg(b.fmul(grad_diff, grad_diff)), quad_coef)
            gain = b.select(b.fcmp_ordered(">", grad_diff, zero), gain, infinity)
            gain = b.fsub(gain, _load(b, low_data, k, _VF, mask))
            return list(_track(b, gain, k, mask, best, where, largest=False))

        omin, j = _merge(b, *_over_blocks(b, count, body, [infinity, _NONE]), largest=False)
        return context.make_tuple(b, signature.return_type, [omin, j])

    return signature, codegen
