"""Arrays borrowed without their reference count, for numba's hot calls.

Numba passes an array to a compiled function it does not inline as a new
reference: the caller increments its owner's count (an atomic instruction)
and the callee decrements it on return, once per array per call. The exact
solver's active-set steps call small functions on half a dozen arrays each
step (:func:`nidecode.solvers.batched._primal_active_set`): those atomic
counts were a tenth of its time. Inlining them removes the counts but costs
a fresh install's first searchlight ~3 s more compilation; a borrowed array
(the same data, shape and strides, no owner) is counted by a test for null.

A borrowed array must not outlive its owner: borrow only an argument, or an
array whose owner stays referenced, for use within the call.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["borrow"]


@intrinsic
def borrow(typingctx, array):
    """``array``'s memory, shape and strides without its owner (``meminfo``)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, b, signature, args):
        source = context.make_array(signature.args[0])(context, b, value=args[0])
        view = context.make_array(signature.return_type)(context, b)
        for field in ("data", "shape", "strides", "itemsize", "nitems"):
            setattr(view, field, getattr(source, field))
        view.meminfo = ir.Constant(view.meminfo.type, None)
        view.parent = ir.Constant(view.parent.type, None)
        return view._getvalue()

    return array(array), codegen
