"""FP8 matmuls for the transformer blocks (`GENERATOR_FP8`): an approximate speed lever, off by default.

Every `nn.Linear` inside a transformer's repeated blocks becomes a `Float8Linear`: its weight is stored once in
float8 (e4m3) with one scale per output row, and each call scales the input per row (per token), casts it to
float8 and multiplies with `torch._scaled_mm`, which runs on the FP8 tensor cores of Ada and Hopper GPUs (compute
capability 8.9+) at twice the bf16 rate. The input's scaling and cast are separate kernels in eager mode and only
fuse into the matmul's neighbours when the blocks are compiled (`GENERATOR_COMPILE`), so FP8 pays off compiled.

Approximate: e4m3 keeps 3 mantissa bits, so every product is rounded more coarsely than in bf16; frames differ
from the exact ones (docs/performance.md reports by how much). The layers outside the blocks (patch embedding,
timestep and caption projections, the final projection) stay in the model's dtype: they are a small share of the
work and the most sensitive to rounding. The weights take half the memory of bf16.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ._common import FP8_ALIGNMENT, fp8_eligible, repeated_blocks, transformers_of

log = logging.getLogger(__name__)

FLOAT8 = torch.float8_e4m3fn
FLOAT8_MAX = torch.finfo(FLOAT8).max
_SMALLEST_SCALE = 1e-12  # a row of zeros would otherwise divide by zero


def row_scales(matrix: torch.Tensor) -> torch.Tensor:
    """One float32 scale per row that maps the row's largest magnitude onto float8's largest value."""
    return matrix.abs().amax(dim=1, keepdim=True).float().clamp_(min=_SMALLEST_SCALE) / FLOAT8_MAX


def to_float8(matrix: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return (matrix.float() / scales).clamp_(-FLOAT8_MAX, FLOAT8_MAX).to(FLOAT8)


class Float8Linear(nn.Module):
    """`nn.Linear` with float8 weights (per-row scales) and per-token float8 inputs; outputs in the input's dtype.

    The weight is a buffer, not a parameter, so diffusers still reads the model's dtype from its parameters and
    `pipeline.to(dtype)` leaves it alone; `to(device)` and CPU offloading move it like any other tensor.

    With `device`, the layer is made there from a copy of the weight (the original stays where it is): a card that
    cannot hold the transformer in bf16 receives each layer's float8 weight and, for a moment, one bf16 weight."""

    def __init__(self, linear: nn.Linear, device: torch.device | None = None) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach().to(device)  # no copy without a device
        scales = row_scales(weight)  # (out, 1)
        self.register_buffer("weight", to_float8(weight, scales))  # (out, in), row-major
        self.register_buffer("weight_scale", scales.t().contiguous())  # (1, out), as `_scaled_mm` takes it
        bias = linear.bias
        self.bias = bias if device is None or bias is None else nn.Parameter(bias.detach().to(device), False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows = input.reshape(-1, self.in_features).contiguous()  # `_scaled_mm` takes its first matrix row-major
        scales = row_scales(rows)
        # Hopper's row-wise scaled matmul writes bf16; other dtypes are converted after.
        out_dtype = torch.bfloat16 if input.is_cuda else input.dtype
        output = torch._scaled_mm(
            to_float8(rows, scales),
            self.weight.t(),  # (in, out) column-major: the layout `_scaled_mm` wants for its second matrix
            scale_a=scales,
            scale_b=self.weight_scale,
            out_dtype=out_dtype,
        ).to(input.dtype)
        if self.bias is not None:
            output = output + self.bias
        return output.reshape(*input.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def check_fp8_support(device: torch.device) -> None:
    """Raise a clear error when `device` cannot run float8 matmuls (CUDA before compute capability 8.9: Ampere
    and older have no FP8 tensor cores). One tiny `_scaled_mm` on the device is the test."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < (8, 9):
            name = torch.cuda.get_device_name(device)
            raise RuntimeError(
                f"GENERATOR_FP8 needs FP8 tensor cores (compute capability 8.9+: Ada, Hopper or newer); "
                f"{name} is {major}.{minor}. Set GENERATOR_FP8=false."
            )
    probe = torch.ones(FP8_ALIGNMENT, FP8_ALIGNMENT, device=device)
    scale = torch.ones(1, device=device)
    try:
        torch._scaled_mm(probe.to(FLOAT8), probe.to(FLOAT8).t(), scale_a=scale, scale_b=scale, out_dtype=torch.bfloat16)
    except (RuntimeError, NotImplementedError) as error:
        raise RuntimeError(f"GENERATOR_FP8: this torch build cannot multiply float8 on {device}: {error}") from error


def quantize_blocks(module: nn.Module, device: torch.device | None = None) -> list[tuple[nn.Module, str, nn.Linear]]:
    """Replace every eligible `nn.Linear` inside `module`'s repeated blocks by a `Float8Linear`, where the weights
    are, or on `device` (the originals stay where they are). Returns what was replaced as (parent, attribute,
    original), so a caller can put the originals back (`restore`); dropping the list frees them."""
    replaced = []
    for block in repeated_blocks(module):
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear and fp8_eligible(child):
                    setattr(parent, name, Float8Linear(child, device))
                    replaced.append((parent, name, child))
    return replaced


def restore(replaced: list[tuple[nn.Module, str, nn.Linear]]) -> None:
    """Undo `quantize_blocks`: the original layers go back in place."""
    for parent, name, original in replaced:
        setattr(parent, name, original)


def quantize_transformers(
    pipeline: object, kernels: str = "hanul", device: torch.device | None = None
) -> list[tuple[nn.Module, str, nn.Linear]]:
    """`quantize_blocks` for each denoising transformer of the pipeline; logs how many layers changed. `kernels`:
    `hanul` (this module's `Float8Linear`) or `torchao` (the same layers through torchao, fp8_torchao.py). With
    `device`, the float8 layers are made there, one at a time, before the rest of the model is placed."""
    if kernels == "torchao":
        from . import fp8_torchao

        return fp8_torchao.quantize_transformers(pipeline, device)
    if kernels != "hanul":
        raise ValueError(f"GENERATOR_FP8_KERNELS must be hanul or torchao, got {kernels!r}")
    replaced = []
    for transformer in transformers_of(pipeline):
        replaced += quantize_blocks(transformer, device)
    if not replaced:
        raise ValueError("GENERATOR_FP8: the model's transformer has no linear layers in repeated blocks to convert")
    log.info("FP8: %d linear layers of the transformer blocks now multiply in float8", len(replaced))
    return replaced
