"""What the backends share: request checks, the step callback, the reset of hooks' state, and moving frames between
uint8 numpy (what the generator keeps) and the [0, 1] tensors diffusers expects."""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import torch
from diffusers.pipelines.ltx.pipeline_ltx_condition import retrieve_latents

from .base import LatentObserver, ModelProfile, ProgressCallback, RenderRequest
from .preview import denoised_estimate


def frames_to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(F, H, W, 3) uint8 → (F, 3, H, W) float in [0, 1] on `device` (copied as uint8, converted there)."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0)


def image_to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float in [0, 1] on `device`."""
    return frames_to_tensor(image[None], device)[0]


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """(F, 3, H, W) float in [0, 1], on any device → (F, H, W, 3) uint8 numpy.

    The scaling and rounding run on the tensor's device and only uint8 crosses to the CPU: a quarter of the bytes,
    and none of the slow float post-processing in CPU numpy. From a GPU the bytes land in page-locked memory,
    which the copy engine writes at full speed; a fresh pageable buffer is first faulted in page by page and staged
    (the whole step took 0.11 s for 121 frames at 768×512 on the H100 that way). torch's caching host allocator
    reuses the page-locked block once the frames are dropped.
    """
    uint8 = video.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if uint8.is_cuda:
        host = torch.empty(uint8.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(uint8)  # synchronous: the frames are complete when this returns
        return host.numpy()
    return uint8.cpu().numpy()


def transformers_of(pipeline: object) -> list[torch.nn.Module]:
    """The pipeline's denoising transformer(s): Wan 2.2 has a second one for low-noise steps."""
    return [model for name in ("transformer", "transformer_2") if (model := getattr(pipeline, name, None)) is not None]


FP8_ALIGNMENT = 16  # `_scaled_mm` needs both matrix sides to be multiples of 16 on CUDA


def fp8_eligible(linear: torch.nn.Linear) -> bool:
    """A linear layer float8 can take (fp8.py's kernels and torchao's alike): both sides multiples of FP8_ALIGNMENT."""
    return linear.in_features % FP8_ALIGNMENT == 0 and linear.out_features % FP8_ALIGNMENT == 0


BLOCK_LISTS = ("transformer_blocks", "blocks")  # where LTX-Video's and Wan's transformers keep their repeated blocks


def repeated_blocks(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer's repeated blocks, in order (what regional compile, FP8 and step caches work on)."""
    return [
        block
        for name in BLOCK_LISTS
        if isinstance(blocks := getattr(transformer, name, None), torch.nn.ModuleList)
        for block in blocks
    ]


def reset_render_state(pipeline: object) -> None:
    """Forget what stateful diffusers hooks kept from the last render: a step cache's residuals
    (`GENERATOR_FIRST_BLOCK_CACHE`), the guidance stop's step count (`GENERATOR_GUIDANCE_STOP`). diffusers resets
    them only at the end of a call that finishes, so a render stopped part-way (cancelled, failed) would otherwise
    hand its state to the next one. A no-op for a transformer without hooks."""
    for transformer in transformers_of(pipeline):
        registry = getattr(transformer, "_diffusers_hook", None)  # diffusers' HookRegistry, once a hook is added
        if registry is not None:
            registry.reset_stateful_hooks(recurse=True)


def check_request(request: RenderRequest, profile: ModelProfile) -> None:
    """Refuse sizes and conditioning the model cannot take, before any GPU work."""
    if (request.num_frames - 1) % profile.frame_multiple:
        raise ValueError(f"num_frames must be {profile.frame_multiple}k+1, got {request.num_frames}")
    if request.width % profile.size_multiple or request.height % profile.size_multiple:
        raise ValueError(
            f"width and height must be multiples of {profile.size_multiple}, got {request.width}x{request.height}"
        )
    if request.image is not None and request.video is not None:
        raise ValueError("give either a first image or frames to continue from, not both")
    if request.image is not None:
        if not profile.supports_image:
            raise ValueError(f"{profile.name} cannot start from an image")
        if request.image.shape != (request.height, request.width, 3):
            raise ValueError(f"image must be {request.height}x{request.width}x3, got {request.image.shape}")
    if request.video is not None:
        if not profile.supports_video:
            raise ValueError(f"{profile.name} cannot continue a video")
        frames = request.video
        if frames.ndim != 4 or frames.shape[1:] != (request.height, request.width, 3):
            raise ValueError(f"video must be (F, {request.height}, {request.width}, 3), got {frames.shape}")
        if (frames.shape[0] - 1) % profile.frame_multiple or frames.shape[0] >= request.num_frames:
            raise ValueError(
                f"conditioning frames must be {profile.frame_multiple}k+1 and fewer than num_frames, "
                f"got {frames.shape[0]} of {request.num_frames}"
            )

    if request.source is not None:
        if not profile.supports_edit:
            raise ValueError(f"{profile.name} cannot edit a video")
        if request.source.shape != (request.num_frames, request.height, request.width, 3):
            raise ValueError(
                f"source must be ({request.num_frames}, {request.height}, {request.width}, 3), "
                f"got {request.source.shape}"
            )
        if request.strength is None or not 0.0 < request.strength <= 1.0:
            raise ValueError(f"an edit's strength must be in (0, 1], got {request.strength}")
    for reference in request.references:
        if reference.shape != (request.height, request.width, 3):
            raise ValueError(f"references must be {request.height}x{request.width}x3, got {reference.shape}")


def prompt_token_counts(pipeline: object, text: str, max_sequence_length: int) -> tuple[int, int]:
    """How many tokens `text` is for the pipeline's own tokenizer, and how many of them its text encoder takes (the
    pipelines cut the rest at `max_sequence_length`, end-of-text token included)."""
    tokenizer = pipeline.tokenizer
    count = len(tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])
    return count, min(count, max_sequence_length)


def step_callback(
    on_step: ProgressCallback | None,
    preview: LatentObserver | None = None,
    unpack: Callable[[torch.Tensor], torch.Tensor] | None = None,
):
    """diffusers' `callback_on_step_end` around `on_step`; its exceptions (RenderCancelled) propagate.

    diffusers calls the callback inside the denoising loop with no try/except around it, so raising stops the
    render at once (tests/generator/test_pipelines.py checks this against the installed version). With `preview`,
    each step's latents are kept until the next (for the denoised estimate, see preview.py) and, when a preview is
    due, the estimate is handed over as (C, F, H, W) (`unpack` turns the loop's latents into that layout).
    """
    previous: torch.Tensor | None = None

    def callback(pipeline: object, step: int, timestep: object, tensors: dict) -> dict:
        nonlocal previous
        if on_step is not None:
            on_step(step + 1, pipeline.num_timesteps)
        if preview is not None and "latents" in tensors:
            latents = tensors["latents"]
            if preview.due():
                estimate = denoised_estimate(pipeline.scheduler, step, previous, latents)
                preview.take(unpack(estimate) if unpack is not None else estimate[0])
            previous = latents.detach().clone()
        return tensors

    return callback


class PromptCache:
    """A small LRU of text-encoder outputs, so a repeated prompt (re-rolls, extensions, the shared empty negative
    prompt) skips the text encoder. Exact: a hit returns the tensors the same encoder call returned before, and
    the encoder is deterministic, so frames are bit-identical to an uncached render (tests check it).

    Entries stay on the device they were computed on (about 1 MiB each for T5-XXL at 128 tokens in bf16).
    `size` 0 turns caching off: every call computes.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], object]) -> object:
        if self.size <= 0:
            self.misses += 1
            return compute()
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def cached_prompt_arguments(
    pipeline: object, cache: PromptCache, request: RenderRequest, max_sequence_length: int, device: torch.device
) -> dict[str, object]:
    """The prompt arguments of an LTX-family pipeline call (LTX-Video, LTX-2): the texts themselves when `cache` is
    off, else their embeddings and masks, each computed once by the pipeline's own `encode_prompt` exactly as its
    `__call__` would (one text at a time, no guidance batch) and kept in `cache`. The negative prompt only where the
    call guides (guidance above 1; diffusers encodes a missing one as "", so "" is what is cached and passed)."""
    if cache.size <= 0:
        return {"prompt": request.prompt, "negative_prompt": request.negative_prompt or None}

    def encoded(text: str) -> tuple[torch.Tensor, torch.Tensor]:
        def compute() -> tuple[torch.Tensor, torch.Tensor]:
            embeds, mask, _, _ = pipeline.encode_prompt(
                prompt=text, do_classifier_free_guidance=False, max_sequence_length=max_sequence_length, device=device
            )
            return embeds, mask

        return cache.get((text, max_sequence_length), compute)

    arguments: dict[str, object] = {}
    arguments["prompt_embeds"], arguments["prompt_attention_mask"] = encoded(request.prompt)
    if request.guidance_scale > 1.0:
        negative = encoded(request.negative_prompt or "")
        arguments["negative_prompt_embeds"], arguments["negative_prompt_attention_mask"] = negative
    return arguments


def ltx_loop_latents(pipeline: object, video: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, 3, F, H, W) clips in [-1, 1] → their latents as an LTX-family pipeline's denoising loop holds them
    (LTX-Video, LTX-2): the VAE's mean, normalised by the VAE's mean, std and scaling factor (what the pipeline
    undoes before it decodes)."""
    vae = pipeline.vae
    latents = retrieve_latents(vae.encode(video.to(device, vae.dtype)), sample_mode="argmax")
    return pipeline._normalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)


def packed_latents_unpacker(
    pipeline: object, request: RenderRequest, conditions_first: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loop's packed latents (B, tokens, C·p·p·pt) of `request` on an LTX-family pipeline → (C, F, H, W), still
    normalised, as the pipeline unpacks them after its loop. Condition tokens are dropped: LTX-Video's pipeline puts
    them in front of the request's own (`conditions_first`), LTX-2's after them."""
    size, size_t = pipeline.transformer_spatial_patch_size, pipeline.transformer_temporal_patch_size
    frames = ((request.num_frames - 1) // pipeline.vae_temporal_compression_ratio + 1) // size_t
    height = request.height // pipeline.vae_spatial_compression_ratio // size
    width = request.width // pipeline.vae_spatial_compression_ratio // size
    tokens = frames * height * width

    def unpack(latents: torch.Tensor) -> torch.Tensor:
        own = latents[:, -tokens:] if conditions_first else latents[:, :tokens]
        return pipeline._unpack_latents(own, frames, height, width, size, size_t)[0]

    return unpack


def call_default(pipeline: object, parameter: str) -> object:
    """The default of one of the pipeline's `__call__` parameters (e.g. max_sequence_length), as installed."""
    return inspect.signature(type(pipeline).__call__).parameters[parameter].default
