"""Float formats numpy has no dtype for, read from their bits: bfloat16 and the FP8 formats E4M3 and E5M2.

Only a weight's non-zero pattern matters to NNSTD, but the values are decoded exactly (bfloat16 into
float32, FP8 into float16: every value of each fits), so the readers' checks apply unchanged: a
negative zero is zero (no connection), NaN and infinity are refused.

- bfloat16: the upper 16 bits of a float32.
- E5M2 (``float8_e5m2``, safetensors ``F8_E5M2``): the upper 8 bits of a float16 (bias 15, infinities, NaNs).
- E4M3 (``float8_e4m3fn``, safetensors ``F8_E4M3``): sign, 4 exponent bits (bias 7), 3 mantissa bits;
  no infinities, and S.1111.111 is NaN; the largest value is 448.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RAW_DTYPES", "decode", "decoded_dtype"]

# format -> the unsigned integer dtype its bits are read as (little-endian in a file)
RAW_DTYPES = {"bfloat16": np.dtype("u2"), "float8_e4m3fn": np.dtype("u1"), "float8_e5m2": np.dtype("u1")}


def _e4m3_table() -> np.ndarray:
    """The 256 E4M3 values as float16, indexed by their bits."""
    bits = np.arange(256)
    sign = np.where(bits & 0x80, -1.0, 1.0)
    exponent, mantissa = (bits >> 3) & 0xF, bits & 0x7
    magnitude = np.where(exponent == 0, mantissa / 8 * 2.0**-6, (1 + mantissa / 8) * 2.0 ** (exponent - 7))
    values = sign * magnitude
    values[(bits & 0x7F) == 0x7F] = np.nan
    return values.astype(np.float16)  # exact: 2^-9 .. 448 are float16 numbers


_E4M3 = _e4m3_table()


def decoded_dtype(fmt: str) -> np.dtype:
    """The numpy dtype ``decode`` returns for a format."""
    return np.dtype(np.float32 if fmt == "bfloat16" else np.float16)


def decode(bits: np.ndarray, fmt: str) -> np.ndarray:
    """Exact values of ``bits`` (native-order unsigned integers, see RAW_DTYPES) in the format ``fmt``."""
    if fmt == "bfloat16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if fmt == "float8_e5m2":
        return (bits.astype(np.uint16) << 8).view(np.float16)
    if fmt == "float8_e4m3fn":
        return _E4M3[bits]
    raise ValueError(f"unknown float format {fmt!r}")
