"""A model's profile without loading its weights: what an API-only generator (GENERATOR_WORKERS=0) needs to
validate requests for the workers that do load it."""

from __future__ import annotations

from ..hub import identify
from ..settings import GeneratorSettings
from . import _apply_profile_file, detect_family, pipeline_class_of
from .base import ModelProfile
from .ltx import ltx_profile_for
from .ltx2 import ltx2_profile_for, vocoder_rate
from .tiny import TINY_LTX_PROFILE, TINY_SOUND_PROFILE, TINY_WAN_PROFILE
from .wan import wan_profile_for


def describe_model(settings: GeneratorSettings) -> ModelProfile:
    """The profile `load_backend` would report, from the catalog, the model's name and a local folder's files."""
    source = identify(settings.model)
    family = detect_family(settings.model, settings.model_family, source.folder)
    if source.is_tiny:
        return {"wan": TINY_WAN_PROFILE, "ltx2": TINY_SOUND_PROFILE}.get(family, TINY_LTX_PROFILE)
    if family == "ltx2":
        profile = ltx2_profile_for(settings.model, source.preset, audio_sample_rate=vocoder_rate(source.folder))
    elif family == "ltx":
        profile = ltx_profile_for(settings.model, source.preset)
    else:
        # The folder's (or preset's) pipeline class decides, as it does when the workers load it; the name only
        # where neither says (a hub id, whose files an API-only host may not have).
        pipeline_class = pipeline_class_of(source)
        vace = pipeline_class == "WanVACEPipeline" if pipeline_class else "vace" in settings.model.lower()
        profile = wan_profile_for(settings.model, vace=vace, preset=source.preset)
    return _apply_profile_file(profile, source.folder)
