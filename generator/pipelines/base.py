"""What every video backend offers the rest of the generator: its profile, and one `render` call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..catalog import ModelPreset

if TYPE_CHECKING:
    import torch


class RenderCancelled(Exception):
    """Raised inside a render when its job was cancelled (checked between denoising steps)."""


@dataclass(frozen=True)
class ModelProfile:
    """What a loaded model can do; the API maps requests (seconds, size) onto it."""

    family: str  # "ltx" | "wan"
    name: str  # hub id, folder or "tiny"
    fps: int  # the model's real frame rate
    frame_multiple: int  # frames must be frame_multiple * k + 1 (LTX 8, Wan 4)
    size_multiple: int  # width and height must be multiples of this (LTX 32, Wan 16)
    # Native resolutions per orientation: {"landscape": (w, h), "portrait": (w, h), "square": (w, h)}.
    native_sizes: dict[str, tuple[int, int]]
    max_segment_frames: int  # longest clip one call renders; longer videos chain extensions
    default_steps: int
    default_guidance: float
    conditioning_frames: int  # parent frames fed to a continuation (a valid frame count: multiple*k + 1)
    max_side: int = 1920  # largest width or height accepted
    min_side: int = 32
    supports_image: bool = True  # can take a first frame (image-to-video)
    supports_video: bool = True  # can continue from frames (extensions, long videos)
    supports_edit: bool = True  # can re-render a video by a prompt (video-to-video: `/v1/videos/edits`)
    # What a character's reference frames condition in a render ("same subject"): "reference_images" (Wan VACE),
    # "image_condition" (LTX: an image condition part-way, below full strength), "" (none: the prompt alone).
    subject_conditioning: str = ""
    # A distilled checkpoint's own schedule, used when a render asks for exactly len(timesteps) steps.
    timesteps: tuple[float, ...] | None = None
    # Samples per second of the sound the model renders with its frames (`SoundBackend`); 0: a silent model.
    audio_sample_rate: int = 0

    @property
    def has_sound(self) -> bool:
        return self.audio_sample_rate > 0


@dataclass
class RenderRequest:
    """One call of the pipeline: all sizes already valid for the model's profile."""

    prompt: str
    width: int
    height: int
    num_frames: int
    seed: int
    num_inference_steps: int
    guidance_scale: float
    negative_prompt: str | None = None
    fps: int | None = None
    # First frame for image-to-video: (H, W, 3) uint8, already resized to width × height.
    image: np.ndarray | None = None
    # Frames to continue from, placed at frame 0: (F, H, W, 3) uint8, F a valid frame count.
    video: np.ndarray | None = None
    # An edit's stretch of source video to re-render (video-to-video), (num_frames, H, W, 3) uint8, by `strength`
    # (0 keeps it, 1 ignores it); `video`, if given too, is the already edited context at its start.
    source: np.ndarray | None = None
    strength: float | None = None
    # Characters' reference frames, (H, W, 3) uint8 each: condition the subject where the model can.
    references: tuple[np.ndarray, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


def profile_from_preset(
    name: str, preset: ModelPreset, *, frame_multiple: int | None = None, size_multiple: int | None = None
) -> ModelProfile:
    """A catalog preset's profile; a loaded model gives its multiples from its configs (the catalog's otherwise)."""
    return ModelProfile(
        family=preset.family,
        name=name,
        fps=preset.fps,
        frame_multiple=frame_multiple or preset.frame_multiple,
        size_multiple=size_multiple or preset.size_multiple,
        native_sizes=dict(preset.native_sizes),
        max_segment_frames=preset.max_segment_frames,
        default_steps=preset.default_steps,
        default_guidance=preset.default_guidance,
        conditioning_frames=preset.conditioning_frames,
        supports_image=preset.supports_image,
        supports_video=preset.supports_video,
        supports_edit=preset.supports_edit,
        subject_conditioning=preset.subject_conditioning,
        timesteps=preset.timesteps,
        audio_sample_rate=preset.audio_sample_rate,
    )


ProgressCallback = Callable[[int, int], None]  # (step done, total steps); may raise RenderCancelled


class LatentObserver(Protocol):
    """Watches the denoising loop for live previews (preview.LatentPreview): asked after each step whether it wants
    the latents, and given them as (C, F, H, W), the denoiser's current estimate, when it does."""

    def due(self) -> bool: ...

    def take(self, latents: torch.Tensor) -> None: ...


class VideoBackend(Protocol):
    """A resident diffusers pipeline on one device."""

    profile: ModelProfile

    def render(
        self, request: RenderRequest, on_step: ProgressCallback | None = None, preview: LatentObserver | None = None
    ) -> np.ndarray:
        """Render and return frames as (num_frames, height, width, 3) uint8.

        When `request.video` is given, the returned frames start with the model's rendering of those
        conditioning frames (so the caller can drop them and stitch). `on_step` is called after every
        denoising step; if it raises RenderCancelled, the render stops and the exception propagates. `preview`
        (optional: a backend without it shows no live preview) watches the latents between steps.
        """
        ...


class SoundBackend(VideoBackend, Protocol):
    """A backend whose model renders sound with the frames (`profile.audio_sample_rate` > 0)."""

    def render_with_sound(
        self, request: RenderRequest, on_step: ProgressCallback | None = None, preview: LatentObserver | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`render`'s frames, and the sound of the same stretch of time: (channels, samples) float32 in [-1, 1] at
        `profile.audio_sample_rate`, about `num_frames / fps` seconds long (the vocoder's own length). `preview`
        watches the video latents between steps, as in `render`."""
        ...


def takes_previews(backend: VideoBackend) -> bool:
    """Whether `backend.render`, and `render_with_sound` where the backend has it, accept a `preview` observer
    (wrappers written before previews may not)."""
    renders = [backend.render]
    if (with_sound := getattr(backend, "render_with_sound", None)) is not None:
        renders.append(with_sound)
    try:
        return all("preview" in inspect.signature(render).parameters for render in renders)
    except (TypeError, ValueError):
        return False
