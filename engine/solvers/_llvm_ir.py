"""LLVM IR building blocks for the solvers' numba intrinsics.

:mod:`nidecode.solvers._smo_passes` and :mod:`nidecode.solvers._vector_min`
write their loops in LLVM vectors with llvmlite's IR builder ``b``; these
are the pieces they share.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils

__all__ = ["call", "loop", "splat"]

_I32, _I64 = ir.IntType(32), ir.IntType(64)


def call(b, name, return_type, args, flags=()):
    """Call the function (an LLVM intrinsic) ``name``, declared on first use."""
    fn_type = ir.FunctionType(return_type, [a.type for a in args])
    return b.call(cgutils.get_or_insert_function(b.module, fn_type, name), args, fastmath=flags)


def splat(b, value, vector_type):
    """``value`` in every lane of a ``vector_type``."""
    lane0 = b.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(_I32, 0))
    zeros = ir.Constant(ir.VectorType(_I32, vector_type.count), [0] * vector_type.count)
    return b.shuffle_vector(lane0, ir.Constant(vector_type, ir.Undefined), zeros)


def loop(b, name, start, stop, step, carried, body):
    """``carried = body(k, carried)`` for ``k = start, start + step, ...`` below
    ``stop`` (``int64``); ``body`` may branch away. Returns the values carried out."""
    entry = b.block
    head = b.append_basic_block(f"{name}.head")
    inside = b.append_basic_block(f"{name}.body")
    after = b.append_basic_block(f"{name}.after")
    b.branch(head)
    b.position_at_end(head)
    k = b.phi(_I64)
    phis = [b.phi(value.type) for value in carried]
    b.cbranch(b.icmp_signed("<", k, stop), inside, after)
    b.position_at_end(inside)
    later = body(k, phis)
    next_k = b.add(k, step)
    end = b.block
    b.branch(head)
    k.add_incoming(start, entry)
    k.add_incoming(next_k, end)
    for phi, first, value in zip(phis, carried, later, strict=True):
        phi.add_incoming(first, entry)
        phi.add_incoming(value, end)
    b.position_at_end(after)
    return phis
