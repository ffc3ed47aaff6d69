"""Request bodies of the Videos API, validated, and their mapping onto what the loaded model can render."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from generator.errors import invalid
from generator.pipelines.base import ModelProfile
from generator.render import VideoSpec

MAX_PROMPT_CHARS = 32_000  # the spec's limit; what the text encoder cannot take is cut at render time and reported
SPEC_DEFAULT_SIZE = "720x1280"  # the spec's size when a request gives none
SPEC_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")  # the spec's sizes (openai-python's `VideoSize`)
# The sizes shown for a clip whose size was chosen for the client (an uploaded image or clip's orientation).
SPEC_SIZE_OF = {"landscape": "1280x720", "portrait": "720x1280"}
MAX_CHARACTERS = 2  # characters one render may name
DEFAULT_EDIT_STRENGTH = 0.6  # how far an edit departs from its source: 0 keeps it, 1 ignores it
MAX_SEED = 2**63 - 1
# OpenAI's model names, accepted as "whatever model this server has loaded".
OPENAI_MODEL_ALIASES = ("sora-2", "sora-2-pro")
B = TypeVar("B", bound=BaseModel)
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: object, info: ValidationInfo) -> object:
        # Multipart forms send unset optional fields as empty strings; an empty prompt stays an error.
        return None if value == "" and info.field_name != "prompt" else value

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value: object) -> object:
        # PostgreSQL cannot store U+0000 in text: refuse it here rather than fail at the INSERT.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL (\\x00) characters")
        return value


def character_ids(value: object) -> object:
    """A form may send one character id, or several comma-separated, as plain text; JSON sends a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()] or None
    return value


class RenderOptions(_Body):
    """Parameters beyond OpenAI's, accepted on every endpoint that renders (as extra JSON or form fields)."""

    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    num_inference_steps: int | None = Field(default=None, ge=1, le=100)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    fps: int | None = Field(default=None, ge=1, le=60)
    max_bytes: int | None = Field(default=None, ge=64 * 1024, le=4 * 1024**3)
    user: str | None = Field(default=None, max_length=128)
    # Hanul's: characters (`char_…` ids) whose reference frames condition the render.
    characters: list[str] | None = Field(default=None, max_length=MAX_CHARACTERS)

    @field_validator("characters", mode="before")
    @classmethod
    def _characters_as_list(cls, value: object) -> object:
        return character_ids(value)


class CreateVideoBody(RenderOptions):
    """POST /v1/videos."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(default=None, max_length=200)
    seconds: float | None = Field(default=None, gt=0)
    size: str | None = Field(default=None, max_length=32)
    # {"image_url": "data:…"} or {"file_id": "file-…"} (the Files API); uploaded files arrive separately
    input_reference: dict[str, str] | None = None


class ExtendVideoBody(RenderOptions):
    """POST /v1/videos/extensions."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    seconds: float | None = Field(default=None, gt=0)
    video: dict[str, str] | None = None  # {"id": "video_…"}; an uploaded MP4 arrives separately
    model: str | None = Field(default=None, max_length=200)


class EditVideoBody(RenderOptions):
    """POST /v1/videos/edits: the source (a completed video by id, or an uploaded clip) changed by a prompt; the
    result keeps its length, size and fps."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    video: dict[str, str] | None = None  # {"id": "video_…"}; an uploaded MP4 arrives separately
    model: str | None = Field(default=None, max_length=200)
    # Hanul's: how far the result departs from the source (0 keeps it, 1 ignores it).
    strength: float | None = Field(default=None, gt=0.0, le=1.0)


class RemixVideoBody(_Body):
    """POST /v1/videos/{id}/remix: a new prompt on the source's settings and seed."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    max_bytes: int | None = Field(default=None, ge=64 * 1024, le=4 * 1024**3)
    user: str | None = Field(default=None, max_length=128)
    characters: list[str] | None = Field(default=None, max_length=MAX_CHARACTERS)

    @field_validator("characters", mode="before")
    @classmethod
    def _characters_as_list(cls, value: object) -> object:
        return character_ids(value)


class CreateCharacterBody(_Body):
    """POST /v1/videos/characters (the clip or image arrives as the file part `video`)."""

    name: str = Field(min_length=1, max_length=80)
    user: str | None = Field(default=None, max_length=128)  # Hanul's: whose character it is
    description: str | None = Field(default=None, max_length=4000)  # Hanul's: the subject in words


class CreateFileBody(_Body):
    """POST /v1/files (the file arrives as the file part `file`)."""

    purpose: str = Field(min_length=1, max_length=32)
    expires_after: dict[str, str] | None = None  # accepted as the spec allows; files are kept until deleted


def parse_body(cls: type[B], fields: dict[str, Any]) -> B:
    """Validate fields into `cls`; the first problem becomes a 400 naming its parameter."""
    try:
        return cls.model_validate(fields)
    except ValidationError as error:
        problem = error.errors()[0]
        param = ".".join(str(part) for part in problem["loc"]) or None
        if problem["type"] == "extra_forbidden":
            raise invalid(param, f"Unknown parameter: '{param}'.", code="unknown_parameter") from None
        if problem["type"] == "missing":
            raise invalid(param, f"Missing required parameter: '{param}'.", code="missing_required_parameter") from None
        raise invalid(param, f"Invalid '{param}': {problem['msg']}.") from None


@dataclass(frozen=True)
class RenderPlan:
    """What one job renders, every number valid for the model; stored as the job's params."""

    width: int
    height: int
    num_frames: int  # new frames this job renders (an extension adds them to its parent's)
    fps: int
    num_inference_steps: int
    guidance_scale: float
    max_bytes: int
    strength: float | None = None  # an edit's: how far it departs from its source

    def as_params(self) -> dict[str, Any]:
        return asdict(self)

    def spec(
        self,
        prompt: str,
        negative_prompt: str | None,
        seed: int,
        image: np.ndarray | None = None,
        parent_tail: np.ndarray | None = None,
        source: np.ndarray | None = None,
        references: tuple[np.ndarray, ...] = (),
    ) -> VideoSpec:
        """What the renderer needs to render this plan."""
        return VideoSpec(
            prompt=prompt,
            negative_prompt=negative_prompt,
            width=self.width,
            height=self.height,
            total_frames=self.num_frames,
            fps=self.fps,
            steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            seed=seed,
            image=image,
            parent_tail=parent_tail,
            source=source,
            strength=self.strength,
            references=references,
        )

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RenderPlan:
        return cls(**{name: params[name] for name in cls.__dataclass_fields__ if name in params})


def check_model(requested: str | None, profile: ModelProfile) -> None:
    """Accept the loaded model's name, OpenAI's names (served by the loaded model), or nothing."""
    if requested is None or requested == profile.name or requested.startswith(OPENAI_MODEL_ALIASES):
        return
    raise invalid("model", f"Model '{requested}' is not loaded; this server renders with '{profile.name}'.")


def orientation(width: int, height: int) -> str:
    ratio = width / height
    if ratio > 1.2:
        return "landscape"
    if ratio < 1 / 1.2:
        return "portrait"
    return "square"


def plan_size(size: str | None, profile: ModelProfile) -> tuple[int, int]:
    """OpenAI's sizes map to the model's native size for that orientation (none given: the spec's default,
    720x1280, portrait); other sizes round to the grid."""
    if size is None:
        size = SPEC_DEFAULT_SIZE
    match = _SIZE.match(size)
    if not match:
        raise invalid("size", f"Invalid 'size': expected WIDTHxHEIGHT such as 1280x720, got '{size}'.")
    width, height = int(match.group(1)), int(match.group(2))
    if width == 0 or height == 0:
        raise invalid("size", "Invalid 'size': width and height must be positive.")
    if size.strip() in (*SPEC_SIZES, "1024x1024"):
        return profile.native_sizes[orientation(width, height)]
    step = profile.size_multiple
    rounded = (max(step, round(width / step) * step), max(step, round(height / step) * step))
    if max(rounded) > profile.max_side or min(rounded) < profile.min_side:
        raise invalid(
            "size",
            f"Invalid 'size': {width}x{height} is outside what this model renders "
            f"(sides {profile.min_side}–{profile.max_side} px, multiples of {step}).",
        )
    return rounded


def plan_frames(seconds: float, fps: int, max_seconds: float, param: str = "seconds") -> int:
    """Frames for `seconds` at `fps`: exactly seconds × fps, rounded to a whole frame."""
    if not math.isfinite(seconds) or seconds < 1 or seconds > max_seconds:
        raise invalid(param, f"Invalid '{param}': must be between 1 and {max_seconds:g}, got {seconds:g}.")
    return max(1, round(seconds * fps))


def shown_size(size: str | None) -> str:
    """The size a Video object shows: the one asked (without spaces), or the spec's default."""
    if size is None:
        return SPEC_DEFAULT_SIZE
    match = _SIZE.match(size)
    return f"{int(match.group(1))}x{int(match.group(2))}" if match else size


def seconds_text(num_frames: int, fps: int) -> str:
    """A clip's length as the API shows it: "4", "2.5"."""
    return f"{round(num_frames / fps, 2):g}"


def plan_render(
    options: RenderOptions,
    *,
    profile: ModelProfile,
    seconds: float,
    size: tuple[int, int],
    default_max_bytes: int,
    max_seconds: float,
    fps: int | None = None,
    strength: float | None = None,
) -> RenderPlan:
    """The full render plan for a request, with the model's defaults for what it left out."""
    fps = fps or options.fps or profile.fps
    return RenderPlan(
        strength=strength,
        width=size[0],
        height=size[1],
        num_frames=plan_frames(seconds, fps, max_seconds),
        fps=fps,
        num_inference_steps=options.num_inference_steps or profile.default_steps,
        guidance_scale=profile.default_guidance if options.guidance_scale is None else options.guidance_scale,
        max_bytes=options.max_bytes or default_max_bytes,
    )
