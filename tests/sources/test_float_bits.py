"""BF16, F16 and FP8 (E4M3, E5M2) weights read from their bits: the same connections, so the same distances as float32."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.errors import InputError
from nnstd_dist.sources.float_bits import decode
from nnstd_dist.sources.formats import read_file_layers

SHAPES = [(12, 9), (12, 12), (4, 12)]  # PyTorch's (out, in)
E4M3 = decode(np.arange(256, dtype=np.uint8), "float8_e4m3fn")
# safetensors dtype -> (bits of +0.0 ... as the format writes them) encoder from float32
NEGATIVE_ZERO = {"BF16": 0x8000, "F16": 0x8000, "F8_E4M3": 0x80, "F8_E5M2": 0x80}


def to_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    """The format's bits for float32 ``values`` (truncated or nearest; every weight here stays non-zero)."""
    if dtype == "BF16":
        return (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
    if dtype == "F16":
        return values.astype("<f2").view("<u2")
    if dtype == "F8_E5M2":
        return (values.astype(np.float16).view(np.uint16) >> 8).astype(np.uint8)
    finite = np.where(np.isnan(E4M3), np.inf, E4M3.astype(np.float64))
    return np.abs(finite[None, :] - values.reshape(-1, 1)).argmin(axis=1).astype(np.uint8).reshape(values.shape)


def write_safetensors(path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """A .safetensors file written byte by byte (the package's numpy API cannot write BF16 or FP8)."""
    header, blobs, offset = {}, [], 0
    for key, (dtype, bits) in tensors.items():
        blob = bits.tobytes()
        header[key] = {"dtype": dtype, "shape": list(bits.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def network(rng) -> list[np.ndarray]:
    """float32 weights of either sign, |w| in [0.25, 2], with +0.0 and -0.0 where there is no connection."""
    out = []
    for shape in SHAPES:
        weights = (rng.uniform(0.25, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)
        out.append(np.where(rng.random(shape) < 0.6, np.where(rng.random(shape) < 0.5, -0.0, 0.0), weights).astype(np.float32))
    return out


def in_format(weights: np.ndarray, dtype: str) -> np.ndarray:
    bits = to_bits(weights, dtype)
    return np.where(np.signbit(weights) & (weights == 0), NEGATIVE_ZERO[dtype], bits).astype(bits.dtype)


def pair(a, b) -> list[float]:
    result = CliRunner().invoke(cli, ["pair", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["layers"]


@pytest.mark.parametrize("dtype", ["BF16", "F16", "F8_E4M3", "F8_E5M2"])
def test_safetensors_in_each_format_give_the_float32_distances(tmp_path, rng, dtype):
    nets = [network(rng) for _ in range(2)]
    for i, layers in enumerate(nets):
        write_safetensors(tmp_path / f"f32_{i}.safetensors", {f"fc{k}.weight": ("F32", w) for k, w in enumerate(layers)})
        write_safetensors(tmp_path / f"low_{i}.safetensors", {f"fc{k}.weight": (dtype, in_format(w, dtype)) for k, w in enumerate(layers)})
    expected = pair(tmp_path / "f32_1.safetensors", tmp_path / "f32_0.safetensors")
    assert 0 < expected[0] < 1
    assert pair(tmp_path / "low_1.safetensors", tmp_path / "low_0.safetensors") == expected
    layers = read_file_layers(tmp_path / "low_0.safetensors")
    # negative zeros are no connections: the non-zero pattern is the float32 one exactly
    assert [(m != 0).tolist() for _, m in layers] == [(w != 0).tolist() for w in nets[0]]


@pytest.mark.parametrize(
    ("dtype", "bits"),
    [("BF16", 0x7FC0), ("BF16", 0xFF80), ("F16", 0x7C00), ("F8_E4M3", 0x7F), ("F8_E4M3", 0xFF), ("F8_E5M2", 0x7C), ("F8_E5M2", 0xFE)],
    ids=["bf16-nan", "bf16-minus-inf", "f16-inf", "e4m3-nan", "e4m3-minus-nan", "e5m2-inf", "e5m2-minus-nan"],
)
def test_nan_and_infinity_are_refused(tmp_path, dtype, bits):
    raw = np.zeros((3, 2), dtype="<u2" if dtype in ("BF16", "F16") else np.uint8)
    raw[1, 1] = bits
    write_safetensors(tmp_path / "bad.safetensors", {"w": (dtype, raw)})
    with pytest.raises(InputError, match="NaN or infinite"):
        read_file_layers(tmp_path / "bad.safetensors")


def test_other_small_floats_are_refused_by_name(tmp_path):
    write_safetensors(tmp_path / "e8m0.safetensors", {"w": ("F8_E8M0", np.ones((2, 2), np.uint8))})
    with pytest.raises(InputError, match="'w' is F8_E8M0, not read .of the small floats F16, BF16, F8_E4M3 and F8_E5M2 are"):
        read_file_layers(tmp_path / "e8m0.safetensors")


def test_e4m3_has_no_infinity_and_448_at_most():
    finite = E4M3[~np.isnan(E4M3)]
    assert np.isnan(E4M3).sum() == 2 and np.isfinite(finite).all() and finite.max() == 448 and finite[finite > 0].min() == 2.0**-9


# --- against torch: every bit pattern, checkpoints and safetensors written by torch itself ----------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="the tests use real PyTorch: pip install torch==2.13.0 (CPU wheel)")


@pytest.mark.parametrize("fmt", ["bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_every_bit_pattern_decodes_as_torch_does(torch, fmt):
    n, carrier = (2**16, torch.int16) if fmt == "bfloat16" else (2**8, torch.uint8)
    bits = torch.arange(n, dtype=torch.int32).to(carrier)
    expected = bits.view(getattr(torch, fmt)).float().numpy()
    got = decode(bits.numpy().view(np.uint16 if fmt == "bfloat16" else np.uint8), fmt).astype(np.float32)
    np.testing.assert_array_equal(got, expected)  # NaNs in the same places too


@pytest.mark.parametrize("fmt", ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"])
def test_checkpoints_and_safetensors_written_by_torch(torch, tmp_path, rng, fmt):
    from safetensors.torch import save_file

    nets = [network(rng) for _ in range(2)]
    for i, layers in enumerate(nets):
        for name, dtype in [("f32", torch.float32), ("low", getattr(torch, fmt))]:
            state = {f"fc{k}.weight": torch.from_numpy(w).to(dtype) for k, w in enumerate(layers)}
            assert all(bool(torch.signbit(t.float()).any()) for t in state.values())  # negative zeros survive the cast
            torch.save({"model": state}, tmp_path / f"{name}_{i}.pt")
            save_file(state, tmp_path / f"{name}_{i}.safetensors")
    expected = pair(tmp_path / "f32_1.pt", tmp_path / "f32_0.pt")
    assert pair(tmp_path / "low_1.pt", tmp_path / "low_0.pt") == expected
    assert pair(tmp_path / "low_1.safetensors", tmp_path / "low_0.safetensors") == expected


@pytest.mark.parametrize("fmt", ["bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_a_nan_in_a_checkpoint_is_refused(torch, tmp_path, fmt):
    weight = torch.ones(3, 4)
    weight[1, 2] = float("nan")
    torch.save({"fc.weight": weight.to(getattr(torch, fmt))}, tmp_path / "nan.pt")
    result = CliRunner().invoke(cli, ["pair", str(tmp_path / "nan.pt"), str(tmp_path / "nan.pt")])
    assert result.exit_code == 2 and "'fc.weight' contains NaN or infinite weights" in result.stderr, result.output
