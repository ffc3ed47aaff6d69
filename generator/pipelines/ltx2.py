"""LTX-2 (video with sound) through diffusers' `LTX2ConditionPipeline`: text-to-video, image-to-video and
continuation, each rendering the clip's sound with its frames.

`LTX2ConditionPipeline` loads the same components as the `LTX2Pipeline` checkpoints (`diffusers/LTX-2.3-Distilled-
Diffusers`), and takes a first image or the frames to continue from as conditions at frame 0, as
`LTXConditionPipeline` does for LTX-Video. Its sound is conditioned on the text and the frames but not on earlier
sound: an extension renders sound for its whole segment and render.py crossfades it onto what came before, over the
frames the segment continued from.

Distilled checkpoints run without any guidance pass (guidance 1, and no spatio-temporal or modality guidance, whose
defaults in diffusers would each add a transformer pass per step); others run diffusers' LTX-2.3 defaults.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import LTX2ConditionPipeline
from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

from ..catalog import ModelPreset
from ._common import (
    PromptCache,
    cached_prompt_arguments,
    call_default,
    check_request,
    ltx_loop_latents,
    packed_latents_unpacker,
    reset_render_state,
    step_callback,
    tensor_to_frames,
)
from .base import LatentObserver, ModelProfile, ProgressCallback, RenderRequest, profile_from_preset
from .latent_rgb import LatentRGB

LTX2_NATIVE_SIZES = {"landscape": (768, 512), "portrait": (512, 768), "square": (512, 512)}
_NO_GUIDANCE = dict(stg_scale=0.0, modality_scale=1.0, audio_guidance_scale=1.0, audio_stg_scale=0.0)


def sample_rate_of(pipeline: LTX2ConditionPipeline) -> int:
    """The rate of the sound the pipeline's vocoder writes (24 kHz for LTX-2.0's, 48 kHz with LTX-2.3's
    bandwidth extension)."""
    return int(pipeline.vocoder.config.output_sampling_rate)


def vocoder_rate(folder: Path | None) -> int | None:
    """The sound rate a local LTX-2 folder's vocoder config gives, without loading it; None when it has none."""
    config = Path(folder) / "vocoder" / "config.json" if folder is not None else None
    if config is None or not config.is_file():
        return None
    return json.loads(config.read_text()).get("output_sampling_rate")


def trim_text_encoder(pipeline: LTX2ConditionPipeline) -> None:
    """Keep of Gemma 3 what LTX-2 uses: the language model's hidden states, every layer's, for a text.

    LTX-2's checkpoints hold Gemma 3 whole (`Gemma3ForConditionalGeneration`), with its vision tower (SigLIP, about
    0.4B parameters, 0.8 GiB in bfloat16) and the projector that feeds its image features to the language model. A
    text-only call never runs them: they are dropped, so they take no GPU memory in the full tier, no page-locked
    host memory in the streamed ones (where diffusers' lazy prefetch also warned that they never ran) and no time
    in placing.

    And the pipeline's encode calls Gemma as a language model, which computes next-token logits for every position
    (1,024 × 262,208 for Gemma 3 12B: 0.5 GiB in bfloat16 per text) through its output layer, and fills a key/value
    cache: both are thrown away. The output layer is replaced by one that computes nothing (its weight is the input
    embedding's, which stays; in the streamed tiers it was 2 GiB copied to the GPU a second time for every text),
    and the encode is told to keep no cache. The hidden states are the same
    (`tests/generator/test_ltx2_text_encoder.py`).

    What this gives up: Gemma can no longer write text or look at an image, which only the diffusers pipeline's
    prompt enhancement (`enable_prompt_enhancement`) would ask of it; Hanul writes its prompts with its own LLM."""
    text_encoder = pipeline.text_encoder
    inner = getattr(text_encoder, "model", None)
    if getattr(inner, "vision_tower", None) is not None:
        inner.vision_tower = None
        inner.multi_modal_projector = None
    if isinstance(getattr(text_encoder, "lm_head", None), torch.nn.Module):
        text_encoder.lm_head = NoLogits()
    text_encoder.register_forward_pre_hook(_no_cache, with_kwargs=True)


class NoLogits(torch.nn.Module):
    """An output layer that computes no logits: (batch, positions, 0)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states.new_empty((*hidden_states.shape[:-1], 0))


def _no_cache(
    module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object]
) -> tuple[tuple[object, ...], dict[str, object]]:
    return args, {"use_cache": False, **kwargs}


def ltx2_profile(name: str, pipeline: LTX2ConditionPipeline, preset: ModelPreset | None = None) -> ModelProfile:
    """The profile of a loaded LTX-2 model: multiples from its VAE and transformer, the sound's rate from its
    vocoder."""
    return ltx2_profile_for(
        name,
        preset,
        frame_multiple=pipeline.vae_temporal_compression_ratio,
        size_multiple=pipeline.vae_spatial_compression_ratio * pipeline.transformer_spatial_patch_size,
        audio_sample_rate=sample_rate_of(pipeline),
    )


def ltx2_profile_for(
    name: str,
    preset: ModelPreset | None = None,
    *,
    frame_multiple: int | None = None,
    size_multiple: int | None = None,
    audio_sample_rate: int | None = None,
) -> ModelProfile:
    """An LTX-2 profile: the catalog preset's, else LTX-2's usual call (guessed distilled or not from the name)."""
    if preset is not None:
        profile = profile_from_preset(name, preset, frame_multiple=frame_multiple, size_multiple=size_multiple)
    else:
        distilled = "distilled" in name.lower()
        profile = ModelProfile(
            family="ltx2",
            name=name,
            fps=24,
            frame_multiple=frame_multiple or 8,
            size_multiple=size_multiple or 32,
            native_sizes=dict(LTX2_NATIVE_SIZES),
            max_segment_frames=121,
            default_steps=8 if distilled else 30,
            default_guidance=1.0 if distilled else 3.0,
            conditioning_frames=17,
            audio_sample_rate=48_000,
        )
    if audio_sample_rate:
        profile = replace(profile, audio_sample_rate=audio_sample_rate)
    # No edits: LTX2ConditionPipeline takes no denoise strength over a source's latents (an edit would be a new render).
    return replace(profile, supports_edit=False)


class LTX2Backend:
    """A resident `LTX2ConditionPipeline`; `render_with_sound` is one pipeline call, `render` its frames."""

    memory_tier = "full"  # how load_backend placed it (generator/pipelines/memory.py)
    latent_rgb: LatentRGB | None = None  # live previews' colours, fitted from the VAE by load_backend (latent_rgb.py)

    def __init__(self, pipeline: LTX2ConditionPipeline, profile: ModelProfile, prompt_cache_size: int = 0) -> None:
        self.pipeline = pipeline
        self.profile = profile
        # Gemma's hidden states per text (the call runs its connectors on them, cached or not).
        self.prompt_cache = PromptCache(prompt_cache_size)
        self.max_sequence_length = call_default(pipeline, "max_sequence_length")
        pipeline.set_progress_bar_config(disable=True)

    @property
    def device(self) -> torch.device:
        return self.pipeline._execution_device

    def render(
        self, request: RenderRequest, on_step: ProgressCallback | None = None, preview: LatentObserver | None = None
    ) -> np.ndarray:
        """Render `request` and return (num_frames, height, width, 3) uint8 frames (the sound is dropped)."""
        return self.render_with_sound(request, on_step, preview)[0]

    def render_with_sound(
        self, request: RenderRequest, on_step: ProgressCallback | None = None, preview: LatentObserver | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The frames, and the sound of the same stretch: (channels, samples) float32 at the vocoder's rate.
        `preview` sees the video latents only (the step callback is not given the sound's)."""
        check_request(request, self.profile)
        reset_render_state(self.pipeline)
        guidance = _NO_GUIDANCE if request.guidance_scale <= 1.0 else {}
        generator = torch.Generator("cpu").manual_seed(request.seed)  # the same noise on any device
        with torch.inference_mode():
            output = self.pipeline(
                conditions=self._conditions(request) or None,
                **self.prompt_arguments(request),
                width=request.width,
                height=request.height,
                num_frames=request.num_frames,
                frame_rate=float(request.fps or self.profile.fps),
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                generator=generator,
                output_type="pt",  # frames stay on the device for the uint8 conversion
                callback_on_step_end=step_callback(
                    on_step, preview, packed_latents_unpacker(self.pipeline, request, conditions_first=False)
                ),
                **guidance,
            )
        frames = tensor_to_frames(output.frames[0])
        sound = output.audio[0].float().clamp(-1.0, 1.0).cpu().numpy()
        return frames, np.ascontiguousarray(sound, dtype=np.float32)

    def prompt_arguments(self, request: RenderRequest) -> dict[str, object]:
        """The call's prompt arguments: the texts, or Gemma's hidden states and masks from the prompt cache (the
        pipeline's own `encode_prompt`, as its `__call__` runs it; the connectors run on them in the call either
        way). The call guides exactly when guidance is above 1: below, the audio guidance is turned off too."""
        return cached_prompt_arguments(self.pipeline, self.prompt_cache, request, self.max_sequence_length, self.device)

    def encode_as_loop_latents(self, video: torch.Tensor) -> torch.Tensor:
        """Clips → latents as the denoising loop holds them, for fitting the previews' colours (latent_rgb.py)."""
        return ltx_loop_latents(self.pipeline, video, self.device)

    def _conditions(self, request: RenderRequest) -> list[LTX2VideoCondition]:
        # uint8 numpy as the pipeline takes it: a lone first image is re-compressed the way the model was trained.
        if request.video is not None:
            return [LTX2VideoCondition(frames=request.video, index=0, strength=1.0)]
        if request.image is not None:
            return [LTX2VideoCondition(frames=request.image, index=0, strength=1.0)]
        return []
