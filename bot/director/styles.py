"""How each video model family wants its prompt written: the guide for the LLM, caps, default negatives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelStyle:
    """Prompt conventions of one video model family."""

    family: str
    model_name: str  # as the LLM is told about it
    max_words: int  # hard cap on the prompt; the guide asks for less
    guide: str  # how to write the prompt, for the system message
    negative_prompt: str  # used when the LLM gives none, and offline
    enrichment: str  # the one sentence the offline expander may add to an English request

    @property
    def max_chars(self) -> int:
        # Words average well under 9 characters; the character cap only stops pathological replies.
        return self.max_words * 9


# LTX-Video follows long, literal, chronological descriptions best (Lightricks' prompting guide).
LTX = ModelStyle(
    family="ltx",
    model_name="LTX-Video",
    max_words=200,
    guide=(
        "One paragraph of flowing prose in the present tense, 80 to 180 words, never more than 200. "
        "Describe the shot in chronological order: start with the main action in one sentence, then specific "
        "movements and gestures, the appearance of characters and objects, the background and environment, "
        "the camera angle and movement, the lighting and colours, and the visual style. Be literal and "
        "concrete, as a cinematographer would describe a shot list; describe only what is visible (no sound, "
        "no thoughts, no lists or headings)."
    ),
    negative_prompt="worst quality, inconsistent motion, blurry, jittery, distorted, watermark, text, subtitles",
    enrichment="Cinematic shot with smooth, steady camera movement, natural lighting and fine, realistic detail.",
)

# Wan 2.x's own prompt extender aims at about 80-100 words: subject, scene, motion, then aesthetic controls.
WAN = ModelStyle(
    family="wan",
    model_name="Wan 2.1/2.2",
    max_words=120,
    guide=(
        "One paragraph in the present tense, about 60 to 100 words, never more than 120. Name the subject and "
        "its appearance, the scene, and the motion; then the aesthetic controls: lighting, time of day, shot "
        "size, composition, camera angle and camera movement; end with the visual style. Concrete and visual "
        "only (no sound, no lists or headings)."
    ),
    # The English form of Wan's published default negative prompt.
    negative_prompt=(
        "bright colours, overexposed, static, blurred details, subtitles, style, artwork, painting, still image, "
        "overall grey, worst quality, low quality, JPEG artefacts, ugly, deformed, extra fingers, poorly drawn "
        "hands, poorly drawn face, disfigured, malformed limbs, fused fingers, cluttered background, three legs, "
        "many people in the background, walking backwards"
    ),
    enrichment="Cinematic shot, natural lighting, smooth camera movement, detailed and realistic.",
)

# LTX-2 renders sound with the picture from the same prompt: Lightricks' guide for it adds the soundscape to the shot
# description (ambience and effects, speech in quotation marks with who says it and how, music), in the flow.
LTX2 = ModelStyle(
    family="ltx2",
    model_name="LTX-2 (video with synchronized sound)",
    max_words=220,
    guide=(
        "One paragraph of flowing prose in the present tense, 80 to 200 words, never more than 220. Describe the "
        "shot in chronological order: the main action first, then specific movements and gestures, the "
        "appearance of characters and objects, the background, the camera angle and movement, the lighting and "
        "colours, and the visual style. This model also renders the sound, so describe it where it happens: the "
        "ambience and sound effects (rain on a tin roof, distant traffic), any speech in quotation marks with who "
        'says it and how (a man says calmly, "We\'re almost there."), and music if there is any (soft piano). '
        "Be literal and concrete; no thoughts, no lists or headings."
    ),
    negative_prompt=LTX.negative_prompt + ", distorted audio, noise, muffled speech",
    enrichment="Cinematic shot with smooth camera movement, natural lighting and the ambient sound of the scene.",
)

STYLES = {"ltx": LTX, "ltx2": LTX2, "wan": WAN}


def style_for(family: str) -> ModelStyle:
    """The style of a video model family; `auto` (the generator's default setting) means its default, LTX."""
    key = family.strip().lower()
    if key == "auto":
        return LTX
    try:
        return STYLES[key]
    except KeyError:
        raise ValueError(f"unknown video model family {family!r}; expected one of {sorted(STYLES)}") from None
