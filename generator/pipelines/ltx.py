"""LTX-Video through diffusers' `LTXConditionPipeline`: text-to-video, image-to-video and continuation.

Defaults: distilled checkpoints (name contains "distilled") run 8 steps at guidance 1, as Lightricks ships them;
others run 30 steps at guidance 3. One call renders up to 121 frames (5 s at 24 fps, the length LTX-Video is
trained around); longer videos are chains of continuations conditioned on the last 17 frames (see render.py).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from diffusers import LTXConditionPipeline
from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition, retrieve_latents

from ..catalog import ModelPreset
from ._common import (
    PromptCache,
    cached_prompt_arguments,
    call_default,
    check_request,
    frames_to_tensor,
    image_to_tensor,
    ltx_loop_latents,
    packed_latents_unpacker,
    prompt_token_counts,
    reset_render_state,
    step_callback,
    tensor_to_frames,
)
from .base import LatentObserver, ModelProfile, ProgressCallback, RenderRequest, profile_from_preset
from .latent_rgb import LatentRGB

log = logging.getLogger(__name__)
# LTXConditionPipeline passes its own timesteps on every call, and the scheduler warns about it each time.
logging.getLogger("diffusers.schedulers.scheduling_flow_match_euler_discrete").setLevel(logging.ERROR)

LTX_NATIVE_SIZES = {"landscape": (768, 512), "portrait": (512, 768), "square": (512, 512)}
# 0.9.5+ VAEs decode with a little noise at a small timestep; these are Lightricks' recommended values.
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025
# A character's reference frame conditions the clip part-way through at this strength: below 1, so the frames
# around it are free to move and the first frame is not frozen to the reference.
CHARACTER_STRENGTH = 0.5


def ltx_profile(name: str, pipeline: LTXConditionPipeline, preset: ModelPreset | None = None) -> ModelProfile:
    """The profile of a loaded LTX-Video model; multiples come from its VAE and transformer configs."""
    return ltx_profile_for(
        name,
        preset,
        frame_multiple=pipeline.vae_temporal_compression_ratio,
        size_multiple=pipeline.vae_spatial_compression_ratio * pipeline.transformer_spatial_patch_size,
    )


def ltx_profile_for(
    name: str, preset: ModelPreset | None = None, *, frame_multiple: int | None = None, size_multiple: int | None = None
) -> ModelProfile:
    """An LTX-Video profile: the catalog preset's, else guessed from the name (distilled or not)."""
    if preset is not None:
        return profile_from_preset(name, preset, frame_multiple=frame_multiple, size_multiple=size_multiple)
    distilled = "distilled" in name.lower()
    return ModelProfile(
        family="ltx",
        name=name,
        fps=24,
        frame_multiple=frame_multiple or 8,
        size_multiple=size_multiple or 32,
        native_sizes=dict(LTX_NATIVE_SIZES),
        max_segment_frames=121,
        default_steps=8 if distilled else 30,
        default_guidance=1.0 if distilled else 3.0,
        conditioning_frames=17,
    )


TAKEN_OVER = "hanul_dynamic_shifting_of"  # on a scheduler copy: the shifting config it stands in for


def take_over_dynamic_shifting(pipeline: LTXConditionPipeline) -> dict | None:
    """LTX-Video 0.9.0/0.9.1 (the default `Lightricks/LTX-Video`) ship a scheduler that shifts its schedule by the
    video's size ("dynamic shifting"), which `LTXPipeline` passes as `mu`. `LTXConditionPipeline`, written for
    0.9.5+ whose schedulers do not shift, never passes `mu`, and such a scheduler refuses to run. For those, the
    pipeline gets a copy of its scheduler that changes no timestep it is given, and the backend passes
    the shifted timesteps itself (`LTXBackend._shifted_timesteps`): the schedule `LTXPipeline` would run. Returns
    the original config, or None when the scheduler does not shift. A pipeline already taken over (a second backend
    on the same pipeline) keeps its copy and gives back the original config again."""
    scheduler = pipeline.scheduler
    taken_over = getattr(scheduler, TAKEN_OVER, None)
    if taken_over is not None:
        return taken_over
    config = scheduler.config
    if not config.get("use_dynamic_shifting", False):
        return None
    # The copy uses the given timesteps as they are: no shift, and no stretch to `shift_terminal` (they have both).
    copy = type(scheduler).from_config(config, use_dynamic_shifting=False, shift=1.0, shift_terminal=None)
    setattr(copy, TAKEN_OVER, config)
    pipeline.scheduler = copy
    return config


class LTXBackend:
    """A resident `LTXConditionPipeline`; `render` is one pipeline call."""

    memory_tier = "full"  # how load_backend placed it (generator/pipelines/memory.py)
    latent_rgb: LatentRGB | None = None  # live previews' colours, fitted from the VAE by load_backend (latent_rgb.py)

    def __init__(self, pipeline: LTXConditionPipeline, profile: ModelProfile, prompt_cache_size: int = 0) -> None:
        self.pipeline = pipeline
        self.profile = profile
        self.prompt_cache = PromptCache(prompt_cache_size)
        self.max_sequence_length = call_default(pipeline, "max_sequence_length")
        self.shifting_config = take_over_dynamic_shifting(pipeline)
        pipeline.set_progress_bar_config(disable=True)

    @property
    def device(self) -> torch.device:
        """Where the pipeline computes (the GPU even when its weights are offloaded to the CPU)."""
        return self.pipeline._execution_device

    def render(
        self, request: RenderRequest, on_step: ProgressCallback | None = None, preview: LatentObserver | None = None
    ) -> np.ndarray:
        """Render `request` and return (num_frames, height, width, 3) uint8 frames."""
        check_request(request, self.profile)
        conditions = self._conditions(request)
        edit = self._edit_inputs(request)
        reset_render_state(self.pipeline)
        decode = {}
        if self.pipeline.vae.config.timestep_conditioning:
            decode = {"decode_timestep": DECODE_TIMESTEP, "decode_noise_scale": DECODE_NOISE_SCALE}
        # A CPU generator gives the same noise whatever the device or offloading.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        with torch.inference_mode():
            output = self.pipeline(
                conditions=conditions or None,
                **self.prompt_arguments(request),
                width=request.width,
                height=request.height,
                num_frames=request.num_frames,
                frame_rate=request.fps or self.profile.fps,
                num_inference_steps=request.num_inference_steps,
                timesteps=self._shifted_timesteps(request),
                guidance_scale=request.guidance_scale,
                generator=generator,
                output_type="pt",  # stays on the device: the uint8 conversion happens there, not in CPU numpy
                callback_on_step_end=step_callback(
                    on_step, preview, packed_latents_unpacker(self.pipeline, request, conditions_first=True)
                ),
                **decode,
                **edit,
            )
        return tensor_to_frames(output.frames[0])

    def _edit_inputs(self, request: RenderRequest) -> dict[str, object]:
        """Video-to-video: the source's latents (the VAE's mean, normalised as the pipeline's own conditions are)
        start the denoising at `denoise_strength`, which skips that share of the schedule's noisiest steps."""
        if request.source is None:
            return {}
        pipeline = self.pipeline
        video = frames_to_tensor(request.source, self.device).mul(2.0).sub(1.0)  # [-1, 1], as the VAE takes it
        video = video.permute(1, 0, 2, 3)[None].to(pipeline.vae.dtype)  # (1, 3, F, H, W)
        with torch.inference_mode():
            latents = retrieve_latents(pipeline.vae.encode(video), sample_mode="argmax")
            latents = pipeline._normalize_latents(latents, pipeline.vae.latents_mean, pipeline.vae.latents_std)
        return {"latents": latents.float(), "denoise_strength": float(request.strength or 1.0)}

    def encode_as_loop_latents(self, video: torch.Tensor) -> torch.Tensor:
        """Clips → latents as the denoising loop holds them, for fitting the previews' colours (latent_rgb.py)."""
        return ltx_loop_latents(self.pipeline, video, self.device)

    def _shifted_timesteps(self, request: RenderRequest) -> list[float] | None:
        """For a scheduler that shifts by the video's size (see `take_over_dynamic_shifting`), the timesteps
        `LTXPipeline` would use for this request, computed by a scheduler with the original config exactly as
        `LTXPipeline` calls it; None otherwise (the pipeline's own schedule)."""
        config = self.shifting_config
        if config is None:
            # A distilled checkpoint's own schedule at its own step count (the pipeline's linear one otherwise).
            timesteps = self.profile.timesteps
            return list(timesteps) if timesteps and len(timesteps) == request.num_inference_steps else None
        pipeline, steps = self.pipeline, request.num_inference_steps
        if steps == 1:  # one step starts from pure noise; the stretch to `shift_terminal` is 0/0 for a single step
            return [float(config.get("num_train_timesteps", 1000))]
        latent_frames = (request.num_frames - 1) // pipeline.vae_temporal_compression_ratio + 1
        ratio = pipeline.vae_spatial_compression_ratio
        mu = calculate_shift(
            latent_frames * (request.height // ratio) * (request.width // ratio),
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        reference = type(pipeline.scheduler).from_config(config)
        reference.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        return reference.timesteps.tolist()

    def prompt_tokens(self, text: str) -> tuple[int, int]:
        """The prompt's token count, and how many of them the text encoder takes (it cuts the rest)."""
        return prompt_token_counts(self.pipeline, text, self.max_sequence_length)

    def prompt_arguments(self, request: RenderRequest) -> dict[str, object]:
        """The call's prompt arguments: the texts, or their embeddings from the prompt cache."""
        return cached_prompt_arguments(self.pipeline, self.prompt_cache, request, self.max_sequence_length, self.device)

    def _conditions(self, request: RenderRequest) -> list[LTXVideoCondition]:
        device = self.device
        conditions = []
        if request.video is not None:
            video = frames_to_tensor(request.video, device)
            conditions.append(LTXVideoCondition(video=video, frame_index=0, strength=1.0))
        elif request.image is not None:
            image = image_to_tensor(request.image, device)
            conditions.append(LTXVideoCondition(image=image, frame_index=0, strength=1.0))
        for reference, frame_index in zip(
            request.references, reference_frame_indices(request, self.profile), strict=True
        ):
            image = image_to_tensor(reference, device)
            conditions.append(LTXVideoCondition(image=image, frame_index=frame_index, strength=CHARACTER_STRENGTH))
        return conditions


def reference_frame_indices(request: RenderRequest, profile: ModelProfile) -> list[int]:
    """Where characters' reference frames condition a clip: spread over its later part, each on a latent frame's
    first pixel frame (a multiple of the frame multiple), never frame 0."""
    count = len(request.references)
    multiple = profile.frame_multiple
    latent_frames = (request.num_frames - 1) // multiple  # latent frames after the first
    if count == 0:
        return []
    return [multiple * max(1, round(latent_frames * (index + 1) / (count + 1))) for index in range(count)]
