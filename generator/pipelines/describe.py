"""A model's profile without loading its weights: what an API-only generator (GENERATOR_WORKERS=0) needs to
validate requests for the workers that do load it."""

from __future__ import annotations

from ..settings import GeneratorSettings
from . import _apply_profile_file, detect_family
from .base import ModelProfile
from .ltx import ltx_profile_for
from .tiny import TINY_LTX_PROFILE, TINY_NAME, TINY_WAN_PROFILE
from .wan import wan_profile_for


def describe_model(settings: GeneratorSettings) -> ModelProfile:
    """The profile `load_backend` would report, from the model's name, family and profile file alone."""
    family = detect_family(settings.model, settings.model_family)
    if settings.model == TINY_NAME:
        return TINY_WAN_PROFILE if family == "wan" else TINY_LTX_PROFILE
    if family == "ltx":
        profile = ltx_profile_for(settings.model)
    else:
        profile = wan_profile_for(settings.model, vace="vace" in settings.model.lower())
    return _apply_profile_file(profile, settings.model)
