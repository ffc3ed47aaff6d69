"""The generator's settings, read once from the environment and `.env` (the shared part is hanul_core's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from hanul_core.settings import CoreSettings


class GeneratorSettings(CoreSettings):
    """The video generator service: HTTP API, queue and GPU workers."""

    host: str = Field(default="127.0.0.1", validation_alias="GENERATOR_HOST")
    port: int = Field(default=8189, ge=0, le=65535, validation_alias="GENERATOR_PORT")
    api_key: SecretStr | None = Field(default=None, validation_alias="GENERATOR_API_KEY")
    # A preset of the catalog (`python -m generator models`), a hub repo id or a local folder; `tiny` for tests.
    model: str = Field(default="ltx-13b-distilled", validation_alias="GENERATOR_MODEL")
    model_family: Literal["auto", "ltx", "ltx2", "wan"] = Field(
        default="auto", validation_alias="GENERATOR_MODEL_FAMILY"
    )
    device: str = Field(default="auto", validation_alias="GENERATOR_DEVICE")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(default="auto", validation_alias="GENERATOR_DTYPE")
    # Memory tier (generator/pipelines/memory.py): `auto` picks from the card's free memory at start.
    memory: Literal["auto", "full", "balanced", "compact", "low"] = Field(
        default="auto", validation_alias="GENERATOR_MEMORY"
    )
    # diffusers' model CPU offload (one whole model on the GPU at a time): an older lever that replaces the tier's
    # placement when set; GENERATOR_MEMORY=low usually fits less memory faster.
    cpu_offload: bool = Field(default=False, validation_alias="GENERATOR_CPU_OFFLOAD")
    vae_tiling: bool = Field(default=False, validation_alias="GENERATOR_VAE_TILING")
    # Speed levers (docs/performance.md). Compile: `auto` compiles on a CUDA device without CPU offload (measured
    # 1.46x faster denoising on an H100, 21 s more start-up) and falls back to eager if compiling fails; `on` insists,
    # `off` never. The prompt cache is exact (same frames) and keeps up to this many encoded texts on the device.
    compile: Literal["auto", "on", "off"] = Field(default="auto", validation_alias="GENERATOR_COMPILE")
    attention_backend: str = Field(default="native", validation_alias="GENERATOR_ATTENTION_BACKEND")
    prompt_cache_size: int = Field(default=32, ge=0, le=4096, validation_alias="GENERATOR_PROMPT_CACHE_SIZE")
    # Approximate levers, off by default: frames differ from the exact ones (docs/performance.md says by how much).
    # FirstBlockCache skips the blocks after the first on steps where the first block's output barely changed
    # (0 = off; diffusers' default threshold is 0.05, higher skips more). FP8: float8 matmuls in the blocks
    # (Ada/Hopper GPUs).
    first_block_cache: float = Field(default=0.0, ge=0.0, le=1.0, validation_alias="GENERATOR_FIRST_BLOCK_CACHE")
    fp8: bool = Field(default=False, validation_alias="GENERATOR_FP8")
    # Whose float8 kernels GENERATOR_FP8 uses: `hanul` (fp8.py, torch._scaled_mm) or `torchao` (the gpu-speed extra).
    fp8_kernels: Literal["hanul", "torchao"] = Field(default="hanul", validation_alias="GENERATOR_FP8_KERNELS")
    # Guidance on the first part of the steps only (1 = every step, the default); later steps cost half.
    guidance_stop: float = Field(default=1.0, gt=0.0, le=1.0, validation_alias="GENERATOR_GUIDANCE_STOP")
    mp4_preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
    ] = Field(default="veryfast", validation_alias="GENERATOR_MP4_PRESET")
    # Encoders the end of an MP4 is cut between (media/parts.py): the last render call's frames in parts of at least a
    # second, each on its own x264 with a share of the cores, joined by stream copy; a keyframe more per part.
    mp4_parts: int = Field(default=1, ge=1, le=16, validation_alias="GENERATOR_MP4_PARTS")
    # Finished renders a worker may be encoding while it renders the next: more keeps the GPU busy when encoding a
    # clip takes longer than rendering one (fast distilled models), at the price of one decoded clip each in memory.
    encodes_in_flight: int = Field(default=2, ge=1, le=8, validation_alias="GENERATOR_ENCODES_IN_FLIGHT")
    # Live previews: every this many seconds a rendering job's latents become a small animated WebP (no VAE decode),
    # served as `GET /v1/videos/{id}/content?variant=preview` and shown on the bot's status message; 0 turns them off.
    preview_seconds: float = Field(default=3.0, ge=0.0, le=600.0, validation_alias="GENERATOR_PREVIEW_SECONDS")
    workers: int = Field(default=1, ge=0, le=64, validation_alias="GENERATOR_WORKERS")
    max_queue: int = Field(default=100, ge=1, validation_alias="GENERATOR_MAX_QUEUE")
    max_queue_per_user: int = Field(default=10, ge=1, validation_alias="GENERATOR_MAX_QUEUE_PER_USER")
    lease_seconds: float = Field(default=60.0, gt=0, validation_alias="GENERATOR_LEASE_SECONDS")
    poll_interval: float = Field(default=0.5, gt=0, validation_alias="GENERATOR_POLL_INTERVAL")
    max_attempts: int = Field(default=3, ge=1, validation_alias="GENERATOR_MAX_ATTEMPTS")
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, validation_alias="GENERATOR_MAX_REQUEST_BYTES")
    # A connection that sends nothing (no request, or only part of its headers) this long is closed (aiohttp's
    # keep-alive timeout, which also runs from the moment a connection opens); a body that has not fully arrived
    # after its headers within the body timeout is refused with 408 and its connection closed.
    idle_timeout: float = Field(default=30.0, gt=0, le=3600, validation_alias="GENERATOR_IDLE_TIMEOUT")
    body_timeout: float = Field(default=120.0, gt=0, le=3600, validation_alias="GENERATOR_BODY_TIMEOUT")
    max_seconds: float = Field(default=60.0, gt=0, le=600, validation_alias="GENERATOR_MAX_SECONDS")
    default_max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024, validation_alias="GENERATOR_MAX_BYTES")
    artifacts_dir: Path | None = Field(default=None, validation_alias="GENERATOR_ARTIFACTS_DIR")
    worker_id: str = Field(default="", validation_alias="GENERATOR_WORKER_ID")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("device", mode="before")
    @classmethod
    def _known_device(cls, value: object) -> object:
        text = str(value).strip().lower()
        if re.fullmatch(r"auto|cpu|cuda(:\d+)?", text) is None:
            raise ValueError("must be auto, cpu, cuda or cuda:N (N: a GPU's number, from 0)")
        return text

    @field_validator("memory", mode="before")
    @classmethod
    def _lower_memory(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_switch(cls, value: object) -> object:
        """Booleans read as on/off too (`true`, `1`, `yes` / `false`, `0`, `no`)."""
        text = str(value).strip().lower()
        return {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(text, text)

    @field_validator("attention_backend")
    @classmethod
    def _offline_attention_backend(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("native", "cudnn_first"):
            return value  # torch's scaled_dot_product_attention (cudnn_first: Hanul's, speed.prefer_cudnn_attention)
        if value.endswith("_hub"):
            raise ValueError(f"{value!r} downloads its kernels at run time; pick an installed backend")
        from diffusers.models.attention_dispatch import AttentionBackendName

        known = sorted(
            ["cudnn_first", *(name.value for name in AttentionBackendName if not name.value.endswith("_hub"))]
        )
        if value not in known:
            raise ValueError(f"unknown attention backend {value!r}; one of {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _default_artifacts_dir(self) -> GeneratorSettings:
        if self.artifacts_dir is None:
            self.artifacts_dir = self.data_dir / "videos"
        return self

    @property
    def videos_dir(self) -> Path:
        """Folder for MP4s, thumbnails and tail frames (shared storage in a fleet)."""
        assert self.artifacts_dir is not None
        return self.artifacts_dir
