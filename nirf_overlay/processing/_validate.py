"""Input checks at the processing stages' public entries.

Each stage checks dtype, shape and layout once where it is called, with a
message that names the argument, and then hands the arrays to its private
numba kernels (:mod:`._kernels`), which check nothing: a wrong dtype there
is a compile of a new specialisation or a numba typing error, a strided
view where a kernel reshapes is a crash.  Read-only arrays are fine
(sources hand out read-only frames); the per-pixel kernels get every input
as a read-only view (:func:`read_only`), so each compiles once.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

#: a shape to check: an int is an exact size, a str any size (its name in the message)
Dims = tuple[Union[int, str], ...]


def require(name: str, a, dtype, dims: Dims, *, contiguous: bool = True) -> None:
    """Refuse ``a`` unless it is a ``dtype`` ndarray of shape ``dims``.

    Parameters
    ----------
    name : the argument, as the caller knows it
    a : the value
    dtype : the one accepted numpy dtype
    dims : per axis an int (that size) or a name (any size), e.g. ``("H", "W", 3)``
    contiguous : also require C order (no strided view)

    Raises
    ------
    TypeError
        not an ndarray, or another dtype
    ValueError
        another number of axes, another size where one is fixed, or (with
        ``contiguous``) not C-contiguous
    """
    # (the checks run every frame: the message is only made for a refusal)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a {_want(dtype, dims)} array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must be a {_want(dtype, dims)} array, got {a.dtype.name} {_shape_text(a)}")
    if a.ndim != len(dims) or any(isinstance(d, int) and s != d for s, d in zip(a.shape, dims)):
        raise ValueError(f"{name} must be a {_want(dtype, dims)} array, got shape {_shape_text(a)}")
    if contiguous and not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (a strided view was given: "
                         f"pass np.ascontiguousarray({name}))")


def require_optional(name: str, a, dtype, dims: Dims, *, contiguous: bool = True) -> None:
    """:func:`require` unless ``a`` is None."""
    if a is not None:
        require(name, a, dtype, dims, contiguous=contiguous)


def frame_dims(shape: tuple, channels: Optional[int] = None) -> Dims:
    """``shape``'s first two sizes as exact dims (another array of the same frame)."""
    dims: Dims = (int(shape[0]), int(shape[1]))
    return dims if channels is None else dims + (channels,)


def _want(dtype, dims: Dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + f") {np.dtype(dtype).name}"


def _shape_text(a: np.ndarray) -> str:
    return "(" + ", ".join(str(s) for s in a.shape) + ")"


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (``a`` itself when it is read-only already).

    numba types a read-only array apart from a writable one and compiles a
    kernel again for it; sources hand out both (the phantom's frames are
    read-only).  Handing a kernel its inputs read-only means one compiled
    version, and one less to wait for on the first start (``processing.warmup``).
    """
    if not a.flags.writeable:
        return a
    v = a.view()
    v.setflags(write=False)
    return v
