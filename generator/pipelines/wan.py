"""Wan 2.1 through diffusers: `WanPipeline` (text-to-video only) or `WanVACEPipeline` (also a first image and
continuation, by giving VACE the known frames and a mask that keeps them).

Edits (video-to-video) use each pipeline's own means: a VACE checkpoint takes the source as its context video, every
frame to regenerate (mask 1), with the context's weight (`conditioning_scale`) falling as the edit's strength rises;
a plain checkpoint runs `WanVideoToVideoPipeline` on the same components, which noises the source's latents by the
strength and denoises the rest of the schedule. Characters' reference frames reach VACE as `reference_images`.

Defaults: 30 steps at guidance 5 (Wan's recommended guidance; 50 steps buy little), 16 fps, up to 81 frames a
call (5 s, Wan 2.1's training length), continuations conditioned on the last 9 frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from diffusers import WanPipeline, WanVACEPipeline, WanVideoToVideoPipeline
from diffusers.pipelines.wan.pipeline_wan_video2video import retrieve_latents
from PIL import Image

from ..catalog import ModelPreset
from ._common import (
    PromptCache,
    call_default,
    check_request,
    frames_to_tensor,
    prompt_token_counts,
    reset_render_state,
    step_callback,
    tensor_to_frames,
)
from .base import LatentObserver, ModelProfile, ProgressCallback, RenderRequest, profile_from_preset
from .latent_rgb import LatentRGB

WAN_NATIVE_SIZES = {"landscape": (832, 480), "portrait": (480, 832), "square": (624, 624)}


def wan_profile(name: str, pipeline: WanPipeline | WanVACEPipeline, preset: ModelPreset | None = None) -> ModelProfile:
    """The profile of a loaded Wan model; only VACE pipelines can take an image or continue."""
    vace = isinstance(pipeline, WanVACEPipeline)
    profile = wan_profile_for(
        name,
        vace=vace,
        preset=preset,
        frame_multiple=pipeline.vae_scale_factor_temporal,
        size_multiple=pipeline.vae_scale_factor_spatial * pipeline.transformer.config.patch_size[1],
    )
    return dataclasses.replace(profile, supports_edit=vace or can_run_video_to_video(pipeline))


def can_run_video_to_video(pipeline: WanPipeline | WanVACEPipeline) -> bool:
    """`WanVideoToVideoPipeline` runs one plain transformer with one timestep per frame: not Wan 2.2 A14B's two
    experts, nor TI2V 5B's per-token timesteps."""
    return (
        not isinstance(pipeline, WanVACEPipeline)
        and getattr(pipeline, "transformer_2", None) is None
        and not pipeline.config.get("expand_timesteps", False)
    )


def wan_profile_for(
    name: str,
    *,
    vace: bool,
    preset: ModelPreset | None = None,
    frame_multiple: int | None = None,
    size_multiple: int | None = None,
) -> ModelProfile:
    """A Wan profile: the catalog preset's, else Wan 2.1's; VACE checkpoints can start from an image and continue
    clips, plain ones cannot."""
    if preset is not None:
        profile = profile_from_preset(name, preset, frame_multiple=frame_multiple, size_multiple=size_multiple)
        subject = "reference_images" if vace else ""
        return dataclasses.replace(profile, supports_image=vace, supports_video=vace, subject_conditioning=subject)
    return ModelProfile(
        family="wan",
        name=name,
        fps=16,
        frame_multiple=frame_multiple or 4,
        size_multiple=size_multiple or 16,
        native_sizes=dict(WAN_NATIVE_SIZES),
        max_segment_frames=81,
        default_steps=30,
        default_guidance=5.0,
        conditioning_frames=9,
        supports_image=vace,
        supports_video=vace,
        subject_conditioning="reference_images" if vace else "",
    )


def vace_context_scale(strength: float) -> float:
    """VACE's weight on an edit's source (its context video) for an edit `strength`: 1 at 0.5, VACE's own default,
    0 at strength 1 (the source ignored), at most 1.5 for the lightest edits."""
    return min(1.5, 2.0 * (1.0 - strength))


class WanBackend:
    """A resident Wan pipeline; `render` is one pipeline call."""

    memory_tier = "full"  # how load_backend placed it (generator/pipelines/memory.py)
    latent_rgb: LatentRGB | None = None  # live previews' colours, fitted from the VAE by load_backend (latent_rgb.py)

    def __init__(
        self, pipeline: WanPipeline | WanVACEPipeline, profile: ModelProfile, prompt_cache_size: int = 0
    ) -> None:
        self.pipeline = pipeline
        self.profile = profile
        self.prompt_cache = PromptCache(prompt_cache_size)
        self.max_sequence_length = call_default(pipeline, "max_sequence_length")
        pipeline.set_progress_bar_config(disable=True)
        self._video_to_video: WanVideoToVideoPipeline | None = None

    def render(
        self, request: RenderRequest, on_step: ProgressCallback | None = None, preview: LatentObserver | None = None
    ) -> np.ndarray:
        """Render `request` and return (num_frames, height, width, 3) uint8 frames."""
        check_request(request, self.profile)
        reset_render_state(self.pipeline)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        call = dict(
            width=request.width,
            height=request.height,
            num_frames=request.num_frames,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=generator,
            output_type="pt",  # uint8 conversion on the device (see frames.tensor_to_frames)
            callback_on_step_end=step_callback(on_step, preview),  # latents are (B, C, F, H, W) already
        )
        pipeline = self.pipeline
        if isinstance(pipeline, WanVACEPipeline):
            call["video"], call["mask"] = self._vace_inputs(request)
            if request.references:
                call["reference_images"] = [Image.fromarray(reference) for reference in request.references]
            if request.source is not None:
                call["conditioning_scale"] = vace_context_scale(request.strength or 1.0)
        elif request.source is not None:
            pipeline = self.video_to_video()
            del call["num_frames"]  # the source's own count
            call["video"] = frames_to_tensor(request.source, pipeline._execution_device)
            call["strength"] = float(request.strength or 1.0)
        with torch.inference_mode():  # the text encoder too: grad mode picks other CPU kernels (not bit-identical)
            output = pipeline(**self._text(request), **call)
        return tensor_to_frames(output.frames[0])

    def encode_as_loop_latents(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) clips in [-1, 1] → their latents as the denoising loop holds them: the VAE's mean,
        normalised by the VAE config's `latents_mean` and `latents_std`, as Wan's pipelines do (and undo before they
        decode)."""
        vae, device = self.pipeline.vae, self.pipeline._execution_device
        latents = retrieve_latents(vae.encode(video.to(device, vae.dtype)), sample_mode="argmax")
        mean = torch.tensor(vae.config.latents_mean, device=latents.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=latents.device).view(1, -1, 1, 1, 1)
        return (latents.float() - mean) / std

    def video_to_video(self) -> WanVideoToVideoPipeline:
        """diffusers' video-to-video pipeline on this pipeline's own components (no second copy of any weight)."""
        if self._video_to_video is None:
            pipeline = self.pipeline
            self._video_to_video = WanVideoToVideoPipeline(
                tokenizer=pipeline.tokenizer,
                text_encoder=pipeline.text_encoder,
                transformer=pipeline.transformer,
                vae=pipeline.vae,
                scheduler=pipeline.scheduler,
            )
            self._video_to_video.set_progress_bar_config(disable=True)
        return self._video_to_video

    def prompt_tokens(self, text: str) -> tuple[int, int]:
        """The prompt's token count, and how many of them the text encoder takes (it cuts the rest)."""
        return prompt_token_counts(self.pipeline, text, self.max_sequence_length)

    def _text(self, request: RenderRequest) -> dict[str, object]:
        """The prompt arguments of the call: the texts themselves, or their cached embeddings."""
        if self.prompt_cache.size <= 0:
            return {"prompt": request.prompt, "negative_prompt": request.negative_prompt or None}
        text = {"prompt_embeds": self._encode(request.prompt)}
        if request.guidance_scale > 1.0:  # the pipeline's own test for classifier-free guidance
            text["negative_prompt_embeds"] = self._encode(request.negative_prompt or "")  # diffusers' default ""
        return text

    def _encode(self, text: str) -> torch.Tensor:
        """One text through the pipeline's own `encode_prompt`, exactly as its `__call__` would encode it."""

        def compute() -> torch.Tensor:
            embeds, _ = self.pipeline.encode_prompt(
                prompt=text,
                do_classifier_free_guidance=False,
                max_sequence_length=self.max_sequence_length,
                device=self.pipeline._execution_device,
            )
            return embeds

        return self.prompt_cache.get((text, self.max_sequence_length), compute)

    def _vace_inputs(self, request: RenderRequest) -> tuple[torch.Tensor, torch.Tensor]:
        """VACE's video and mask: known frames first (mask 0: keep), then grey frames to generate (mask 1); for an edit,
        the source's frames in place of the grey ones (still mask 1: regenerated, with the source as context)."""
        device = self.pipeline._execution_device
        known = request.video if request.video is not None else None
        if known is None and request.image is not None:
            known = request.image[None]
        count = 0 if known is None else len(known)
        if request.source is not None:
            video = frames_to_tensor(request.source, device)
        else:
            video = torch.full((request.num_frames, 3, request.height, request.width), 0.5, device=device)
        mask = torch.ones_like(video)
        if known is not None:
            video[:count] = frames_to_tensor(known, device)
            mask[:count] = 0.0
        # As one-video batches (1, F, 3, H, W): VACE reads the size from video[0] as a (F, 3, H, W) stack.
        return video[None], mask[None]
