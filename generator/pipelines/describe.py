"""A model's profile without loading its weights: what an API-only generator (GENERATOR_WORKERS=0) needs to
validate requests for the workers that do load it."""

from __future__ import annotations

import dataclasses

from ..settings import GeneratorSettings
from . import _apply_profile_file, detect_family
from .base import ModelProfile
from .ltx import LTX_NATIVE_SIZES
from .tiny import TINY_LTX_PROFILE, TINY_NAME, TINY_WAN_PROFILE
from .wan import WAN_NATIVE_SIZES


def describe_model(settings: GeneratorSettings) -> ModelProfile:
    """The profile `load_backend` would report, from the model's name, family and profile file alone."""
    family = detect_family(settings.model, settings.model_family)
    if settings.model == TINY_NAME:
        return TINY_WAN_PROFILE if family == "wan" else TINY_LTX_PROFILE
    name = settings.model.lower()
    if family == "ltx":
        distilled = "distilled" in name
        profile = ModelProfile(
            family="ltx",
            name=settings.model,
            fps=24,
            frame_multiple=8,
            size_multiple=32,
            native_sizes=dict(LTX_NATIVE_SIZES),
            max_segment_frames=121,
            default_steps=8 if distilled else 30,
            default_guidance=1.0 if distilled else 3.0,
            conditioning_frames=17,
        )
    else:
        vace = "vace" in name
        profile = ModelProfile(
            family="wan",
            name=settings.model,
            fps=16,
            frame_multiple=4,
            size_multiple=16,
            native_sizes=dict(WAN_NATIVE_SIZES),
            max_segment_frames=81,
            default_steps=30,
            default_guidance=5.0,
            conditioning_frames=9,
            supports_image=vace,
            supports_video=vace,
        )
    return _apply_profile_file(dataclasses.replace(profile), settings.model)
