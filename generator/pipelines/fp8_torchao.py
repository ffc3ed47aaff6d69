"""FP8 through torchao (`GENERATOR_FP8_KERNELS=torchao`): the same layers as fp8.py's hand-written `Float8Linear`
(every linear layer of the transformer blocks whose sides are multiples of 16), quantized by torchao's
`Float8DynamicActivationFloat8WeightConfig` with row-wise scales (`PerRow`: a scale per output row of the weight and
per token of the input, as fp8.py does), whose kernels and compile fusions torchao maintains.

On the H200 the hand-written layers gave 1.12× on the denoise (compiled); issue 22 asks whether torchao's do better
(bench: `compiled_fp8_torchao`). torchao is an optional dependency (`pip install 'hanul[gpu-speed]'`). Like fp8.py
it needs FP8 tensor cores (compute capability 8.9+): torchao itself asserts that, so the check runs first and says
so in the setting's words.

Each layer is quantized as a new `nn.Linear` sharing the original's weight, put in its place: the original layer
is returned untouched, so `fp8.restore` puts it back (the benchmark compares both kernels on one model); dropping
the list frees the bf16 weights.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ._common import fp8_eligible, repeated_blocks, transformers_of

log = logging.getLogger(__name__)


def float8_config() -> object:
    """torchao's dynamic float8 config with row-wise scales; a clear error when torchao is not installed."""
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow
    except ImportError as error:
        raise RuntimeError(
            "GENERATOR_FP8_KERNELS=torchao needs the torchao package (pip install 'hanul[gpu-speed]'), "
            f"which is not importable here: {error}. Set GENERATOR_FP8_KERNELS=hanul for the built-in kernels."
        ) from error
    return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())


def check_gpu() -> None:
    """torchao's float8 layers ask the current CUDA device for compute capability 8.9+ (and assert otherwise, even
    for weights still on the CPU under offload): say it in the setting's words first."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            "GENERATOR_FP8_KERNELS=torchao needs a CUDA GPU with FP8 tensor cores (compute capability 8.9+: Ada, "
            "Hopper or newer); none is available here. Set GENERATOR_FP8=false."
        )
    capability = torch.cuda.get_device_capability()
    if capability < (8, 9):
        raise RuntimeError(
            f"GENERATOR_FP8_KERNELS=torchao needs FP8 tensor cores (compute capability 8.9+); "
            f"{torch.cuda.get_device_name()} is {capability[0]}.{capability[1]}. Set GENERATOR_FP8=false."
        )


def quantize_transformers(
    pipeline: object, device: torch.device | None = None
) -> list[tuple[nn.Module, str, nn.Linear]]:
    """torchao float8 for the eligible linear layers of each transformer's repeated blocks, where the weights are,
    or on `device` from a copy of each weight. Returns (parent, attribute, original) for `fp8.restore`."""
    config = float8_config()  # first: without torchao, the error names the setting
    check_gpu()
    from torchao.quantization import quantize_

    replaced = []
    for transformer in transformers_of(pipeline):
        for block in repeated_blocks(transformer):
            for parent in list(block.modules()):
                for name, child in list(parent.named_children()):
                    if type(child) is nn.Linear and fp8_eligible(child):
                        layer = _sharing_weights(child, device)
                        quantize_(layer, config)
                        setattr(parent, name, layer)
                        replaced.append((parent, name, child))
    if not replaced:
        raise ValueError("GENERATOR_FP8: the model's transformer has no linear layers in repeated blocks to convert")
    log.info(
        "FP8 (torchao, row-wise): %d linear layers of the transformer blocks now multiply in float8", len(replaced)
    )
    return replaced


def _sharing_weights(linear: nn.Linear, device: torch.device | None = None) -> nn.Linear:
    """A new `nn.Linear` holding `linear`'s own weight and bias tensors (no copy; on `device`, copies there), so
    quantizing it leaves `linear` as it was."""
    layer = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
    layer.weight = nn.Parameter(linear.weight.data.to(device), requires_grad=False)
    if linear.bias is not None:
        layer.bias = nn.Parameter(linear.bias.data.to(device), requires_grad=False)
    return layer.train(linear.training)
