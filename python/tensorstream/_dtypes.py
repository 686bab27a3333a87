"""SafeTensors dtypes as torch and numpy dtypes.

torch: exactly what ``safetensors.torch`` gives, including F4 as ``float4_e2m1fn_x2``
(two 4-bit values per byte, so the last dimension of the file's shape is halved).

numpy has no bfloat16, float8 or float4. With the ``ml_dtypes`` package installed, BF16
and the F8 formats get its dtypes; without it they come back as the unsigned integer of
the same width holding the bit patterns (BF16 -> uint16, F8_* -> uint8). F4 is always
uint8 with the last dimension halved (the packed pairs, as in torch).
"""
from __future__ import annotations

from typing import NamedTuple


class DtypeInfo(NamedTuple):
    torch_name: str  # attribute of the torch module
    numpy_name: str  # numpy dtype, or the ml_dtypes attribute when ml_dtype is set
    ml_dtype: bool  # numpy_name names an ml_dtypes type, with a uint fallback below
    packed: bool  # two elements per byte: the last dimension halves


_FALLBACK_BY_ITEMSIZE = {1: "uint8", 2: "uint16"}

DTYPES = {
    "F64": DtypeInfo("float64", "float64", False, False),
    "F32": DtypeInfo("float32", "float32", False, False),
    "F16": DtypeInfo("float16", "float16", False, False),
    "BF16": DtypeInfo("bfloat16", "bfloat16", True, False),
    "I64": DtypeInfo("int64", "int64", False, False),
    "I32": DtypeInfo("int32", "int32", False, False),
    "I16": DtypeInfo("int16", "int16", False, False),
    "I8": DtypeInfo("int8", "int8", False, False),
    "U64": DtypeInfo("uint64", "uint64", False, False),
    "U32": DtypeInfo("uint32", "uint32", False, False),
    "U16": DtypeInfo("uint16", "uint16", False, False),
    "U8": DtypeInfo("uint8", "uint8", False, False),
    "BOOL": DtypeInfo("bool", "bool", False, False),
    "C64": DtypeInfo("complex64", "complex64", False, False),
    "F8_E4M3": DtypeInfo("float8_e4m3fn", "float8_e4m3fn", True, False),
    "F8_E5M2": DtypeInfo("float8_e5m2", "float8_e5m2", True, False),
    "F8_E8M0": DtypeInfo("float8_e8m0fnu", "float8_e8m0fnu", True, False),
    "F4": DtypeInfo("float4_e2m1fn_x2", "uint8", False, True),
}


def _info(dtype: str, where: str) -> DtypeInfo:
    try:
        return DTYPES[dtype]
    except KeyError:
        raise TypeError(f"{where}: dtype {dtype} has no Python equivalent") from None


def python_shape(dtype: str, shape: tuple, where: str) -> tuple:
    """The shape of the tensor or array for a file's shape (F4 halves the last dim)."""
    if not _info(dtype, where).packed:
        return shape
    if not shape or shape[-1] % 2:
        raise TypeError(f"{where}: F4 shape {list(shape)} needs an even last dimension "
                        "to map onto float4_e2m1fn_x2")
    return shape[:-1] + (shape[-1] // 2,)


def torch_dtype(dtype: str, where: str):
    """The torch dtype for a SafeTensors dtype; TypeError if this torch lacks it."""
    import torch

    result = getattr(torch, _info(dtype, where).torch_name, None)
    if result is None:
        raise TypeError(f"{where}: dtype {dtype} needs torch.{DTYPES[dtype].torch_name}, "
                        f"which torch {torch.__version__} does not have")
    return result


def numpy_dtype(dtype: str, where: str):
    """The numpy dtype for a SafeTensors dtype (see the module docstring)."""
    import numpy as np

    info = _info(dtype, where)
    if info.ml_dtype:
        try:
            import ml_dtypes

            return np.dtype(getattr(ml_dtypes, info.numpy_name))
        except (ImportError, AttributeError):
            itemsize = 2 if dtype == "BF16" else 1
            return np.dtype(_FALLBACK_BY_ITEMSIZE[itemsize])
    return np.dtype(info.numpy_name)
