"""The model catalog: the video models Hanul knows by name, as data in one place.

Each preset says where the weights live (hub repo and, where a citable source gives one, a commit), which diffusers
pipeline loads them, how the model wants to be called (sizes, fps, frame rule, steps, guidance) and roughly what it
costs (download size, GPU memory per tier). `GENERATOR_MODEL` takes a preset name, a hub id or a local folder.

Sources checked (2026-12-04): diffusers 0.42.1's installed pipelines and their docstrings, diffusers'
`docs/source/en/api/pipelines/ltx_video.md` (LTX-Video 0.9.7/0.9.8 distilled: `LTXConditionPipeline`, guidance 1,
the 8-step timestep list below), the Wan-AI model cards (Wan 2.1/2.2 sizes, frame rates, steps, guidance). No
commit hash is made up: a preset without one is pinned at download time by the lock file (see generator/hub.py).

Memory figures are *estimates* computed from parameter counts (`MemoryNeeds`), labelled as such wherever shown.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
_BF16 = 2e9 / 1024**3  # GiB per billion parameters as the models compute (bfloat16)
_FP8 = 1e9 / 1024**3  # GiB per billion parameters stored in float8 (the low tier's layerwise casting)
# float8 storage keeps diffusers' skipped layers (norms, patch and position embeddings, in/out projections) in
# bf16: a few percent of a video transformer's weights, here counted as 5 % more float8 bytes.
_FP8_CAST_SHARE = 1.05
CUDA_OVERHEAD_GIB = 1.0  # the CUDA context, cuBLAS workspaces and the caching allocator's slack

TIERS = ("full", "balanced", "compact", "low")  # fastest first
TIER_MEANINGS = {
    "full": "everything on the GPU",
    "balanced": "text encoder streamed to the GPU only while it encodes; VAE decodes in tiles",
    "compact": "as balanced, with the transformer stored in float8 on the GPU (computed in bf16, not compiled)",
    "low": "weights stored in float8 and streamed to the GPU group by group; VAE decodes in tiles",
}
CONSUMER_CARDS_GIB = (8, 12, 16, 24)


@dataclass(frozen=True)
class MemoryNeeds:
    """Parameter counts (billions) of the parts that sit on the GPU, and the largest working set of a render.

    `activations_gib` is the peak beyond the weights for a clip at the preset's native size and longest segment,
    with VAE tiling (balanced and low tiers); `untiled_decode_gib` is what an untiled VAE decode adds on top (the
    full tier). Both are estimates scaled from the one measured peak, LTX-Video 2B's 17.8 GiB on an H100 at
    768x512x121 with guidance (docs/performance.md): 13.2 GiB of weights, 1 GiB of CUDA overhead, 3.6 GiB working
    set.
    """

    transformer_b: float  # all denoising transformers together (Wan 2.2 A14B has two)
    text_encoder_b: float
    vae_b: float
    activations_gib: float
    untiled_decode_gib: float
    largest_transformer_b: float | None = None  # the one resident at a time under offloading (A14B: one of two)
    # Peaks measured on a GPU (torch's peak reserved memory, GiB) at real size with random weights, by
    # bench/memory_tiers.py; they replace the estimate for their tier (docs/performance.md has the runs).
    measured_gib: tuple[tuple[str, float], ...] = ()

    def peak_gib(self, tier: str, fp8: bool = False) -> float:
        """Peak GPU memory of one render at this tier: measured where it was, estimated otherwise. With `fp8`
        (GENERATOR_FP8, which the full and balanced tiers apply block by block as the weights reach the GPU) their
        transformers' weights count in float8: balanced then holds what compact holds."""
        if fp8 and tier == "balanced":
            return self.peak_gib("compact")
        peak = dict(self.measured_gib).get(tier) or self.estimated_gib(tier)
        if fp8 and tier == "full":
            peak -= self.transformer_b * (_BF16 - _FP8 * _FP8_CAST_SHARE)
        return round(peak, 1)

    def is_measured(self, tier: str) -> bool:
        return tier in dict(self.measured_gib)

    def estimated_gib(self, tier: str) -> float:
        """Estimated peak GPU memory of one render at this tier, from parameter counts."""
        weights = (self.transformer_b + self.text_encoder_b + self.vae_b) * _BF16
        if tier == "full":
            return round(weights + self.activations_gib + self.untiled_decode_gib + CUDA_OVERHEAD_GIB, 1)
        if tier == "balanced":  # the text encoder leaves the GPU; a block of it is on board while it encodes
            on_gpu = (self.transformer_b + self.vae_b) * _BF16
            return round(on_gpu + self.activations_gib + CUDA_OVERHEAD_GIB, 1)
        if tier == "compact":  # as balanced, the transformers' weights in float8 (norms and embeddings stay bf16)
            on_gpu = self.transformer_b * _FP8 * _FP8_CAST_SHARE + self.vae_b * _BF16
            return round(on_gpu + self.activations_gib + CUDA_OVERHEAD_GIB, 1)
        if tier == "low":  # group offload: one block group of the active transformer plus its prefetch, fp8 storage
            one = self.largest_transformer_b or self.transformer_b
            streamed = one * _FP8 * 0.15  # the groups in flight, the norms and embeddings that stay on board
            return round(streamed + self.vae_b * _BF16 + self.activations_gib + CUDA_OVERHEAD_GIB, 1)
        raise ValueError(f"unknown memory tier {tier!r}; one of {', '.join(TIERS)}")

    def host_ram_gib(self) -> float:
        """RAM the balanced, compact and low tiers need to hold what they keep off the GPU (all weights, bf16)."""
        return round((self.transformer_b + self.text_encoder_b + self.vae_b) * _BF16, 1)


@dataclass(frozen=True)
class ModelPreset:
    """One named model: where it comes from, how to call it, what it costs."""

    name: str
    title: str
    family: str  # "ltx" | "wan": the prompt style and backend
    repo: str  # hub repo in diffusers format
    revision: str | None  # a commit hash where a source gives one; None: locked at download (generator/hub.py)
    pipeline_class: str  # the diffusers class that loads the repo
    native_sizes: dict[str, tuple[int, int]]  # orientation -> (width, height)
    fps: int
    frame_multiple: int  # frames = frame_multiple * k + 1
    size_multiple: int
    max_segment_frames: int  # longest clip one call renders; longer videos chain extensions
    conditioning_frames: int
    default_steps: int
    default_guidance: float  # 1.0: a guidance-distilled checkpoint, one pass per step
    download_gib: float  # approximate size of the files the pipeline loads
    memory: MemoryNeeds
    why: str  # one line for the README and `python -m generator models`
    # A distilled checkpoint's own timestep schedule, used when a render asks for exactly that many steps.
    timesteps: tuple[float, ...] | None = None
    supports_image: bool = True
    supports_video: bool = True
    # Video-to-video (`/v1/videos/edits`): LTXConditionPipeline's denoise strength, Wan VACE's context video, or
    # WanVideoToVideoPipeline (one transformer, no per-token timesteps: not Wan 2.2's A14B or TI2V 5B).
    supports_edit: bool = True
    # What "same subject" rests on when a render names characters (SAME_SUBJECT says it in words).
    subject_conditioning: str = ""
    source: str = ""  # where the facts above were checked
    audio_sample_rate: int = 0  # sound rendered with the frames, samples per second; 0: a silent model

    @property
    def distilled(self) -> bool:
        return self.default_guidance <= 1.0


# What a character's reference frames do in a render, per `ModelPreset.subject_conditioning`.
SAME_SUBJECT = {
    "image_condition": "reference frames as LTX image conditions part-way through the clip, below full strength "
    "(the first frame stays free), and the character's description in the prompt",
    "reference_images": "Wan VACE's reference images (`reference_images=`), and the character's description in the "
    "prompt",
    "": "the character's description in the prompt alone (this pipeline takes no reference image)",
}

_LTX_SIZES = {"landscape": (768, 512), "portrait": (512, 768), "square": (512, 512)}
_WAN_480P = {"landscape": (832, 480), "portrait": (480, 832), "square": (624, 624)}
_WAN22_5B = {"landscape": (1280, 704), "portrait": (704, 1280), "square": (960, 960)}
_WAN_720P = {"landscape": (1280, 720), "portrait": (720, 1280), "square": (960, 960)}

# T5-XXL's encoder (LTX-Video) and UMT5-XXL's (Wan), in billions of parameters.
_T5_XXL_B = 4.76
_UMT5_XXL_B = 5.68
# Gemma 3 12B's language model, LTX-2's text encoder (its hidden states, every layer's, feed LTX-2's text
# connectors): 12.2B with the SigLIP vision tower (0.42B) that LTX-2's repos also hold and Hanul drops at load
# (ltx2.trim_text_encoder). Reading the repo briefly holds the tower in host RAM too (0.8 GiB).
_GEMMA3_12B_B = 11.8

PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset(
            name="ltx-13b-distilled",
            title="LTX-Video 0.9.8 13B distilled",
            family="ltx",
            repo="Lightricks/LTX-Video-0.9.8-13B-distilled",
            revision=None,
            pipeline_class="LTXConditionPipeline",
            subject_conditioning="image_condition",
            native_sizes=_LTX_SIZES,
            fps=24,
            frame_multiple=8,
            size_multiple=32,
            max_segment_frames=121,
            conditioning_frames=17,
            default_steps=8,
            default_guidance=1.0,
            timesteps=(1000.0, 993.0, 987.0, 981.0, 975.0, 909.0, 725.0, 0.03),
            download_gib=36.0,
            memory=MemoryNeeds(
                13.0,
                _T5_XXL_B,
                0.5,
                activations_gib=4.5,
                untiled_decode_gib=5.0,
                # H200, 2026-12-04, 768x512x121: allocated 38.5 / 34.1 / 9.0 GiB (bench/results/…-tiers.jsonl).
                # balanced and low are upper bounds: then the text encoder (8.9 GiB) went to the GPU whole for each
                # encode; it now goes a layer at a time (memory.stream_layers). Measure again to lower them.
                measured_gib=(("full", 42.4), ("balanced", 39.2), ("low", 14.4)),
            ),
            why="the default: Lightricks' newest LTX-Video, guidance- and timestep-distilled (8 steps, no guidance "
            "pass): the fastest current checkpoint that keeps extensions and image starts",
            source="diffusers docs api/pipelines/ltx_video.md (0.9.8 distilled; 0.9.7 distilled timesteps)",
        ),
        ModelPreset(
            name="ltx2.3-distilled",
            title="LTX-2.3 distilled (video with sound)",
            family="ltx2",
            repo="diffusers/LTX-2.3-Distilled-Diffusers",
            revision=None,
            pipeline_class="LTX2ConditionPipeline",  # loads the repo's LTX2Pipeline components, adds conditions
            supports_edit=False,  # LTX2ConditionPipeline has no denoise strength over a source's latents
            native_sizes=_LTX_SIZES,
            fps=24,
            frame_multiple=8,
            size_multiple=32,
            max_segment_frames=121,
            conditioning_frames=17,
            default_steps=8,
            default_guidance=1.0,
            # Estimates, not measured: a ~22B audio-video transformer (LTX-2 is 19B: 14B video, 5B audio),
            # Gemma 3 12B as text encoder, video VAE, audio VAE and vocoder ~0.7B, text connectors ~1.5B. In
            # bf16 that is ~68 GiB of weights: the full tier (~79 GiB) needs more than an 80 GB card (an H200);
            # balanced (Gemma off the GPU while the transformer works, ~52 GiB) an 80 GB card; low (fp8,
            # streamed, ~11 GiB) a 16 GB card. The text connectors count with the transformer here.
            download_gib=70.0,
            memory=MemoryNeeds(23.5, _GEMMA3_12B_B, 0.7, activations_gib=5.5, untiled_decode_gib=5.0),
            why="clips with synchronized sound (ambience, speech, music) from one model, distilled to 8 steps "
            "without guidance; image starts and extensions (its sound crossfaded at each seam)",
            source="FACTS.md (repo, LTX2Pipeline, 8 steps, guidance 1); diffusers 0.42.1 pipelines/ltx2 (frames 8k+1, "
            "sizes of 32, 24 fps example, vocoder output rate); parameter counts are estimates",
            audio_sample_rate=48_000,
        ),
        ModelPreset(
            name="wan2.2-a14b",
            title="Wan 2.2 T2V A14B",
            family="wan",
            repo="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
            revision=None,
            pipeline_class="WanPipeline",
            supports_edit=False,
            native_sizes=_WAN_720P,
            fps=16,
            frame_multiple=4,
            size_multiple=16,
            max_segment_frames=81,
            conditioning_frames=9,
            default_steps=40,
            default_guidance=4.0,
            download_gib=65.0,
            memory=MemoryNeeds(
                # 720p at Wan 2.1's 8x VAE is ~2.8x Wan 2.2 5B's tokens per frame: working sets scaled up from its
                28.0,
                _UMT5_XXL_B,
                0.13,
                activations_gib=16.0,
                untiled_decode_gib=14.0,
                largest_transformer_b=14.0,
            ),
            why="the quality preset: the strongest open text-to-video model diffusers loads (two 14B experts, "
            "high-noise then low-noise); slow, text-to-video only",
            supports_image=False,
            supports_video=False,
            source="FACTS.md (repo, two transformers); Wan 2.2 model card (720p, 16 fps, 81 frames, 40 steps)",
        ),
        ModelPreset(
            name="wan2.2-5b",
            title="Wan 2.2 TI2V 5B",
            family="wan",
            repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            revision=None,
            pipeline_class="WanPipeline",
            supports_edit=False,
            native_sizes=_WAN22_5B,
            fps=24,
            frame_multiple=4,
            size_multiple=32,
            max_segment_frames=121,
            conditioning_frames=9,
            default_steps=50,
            default_guidance=5.0,
            download_gib=34.0,
            # H200, 2026-12-04, 1280x704x121 with guidance: full 53.8 GiB reserved, 43.8 allocated, of which 22.5
            # beyond the weights; the working sets below are split from that (the decode share is a guess).
            memory=MemoryNeeds(
                5.0, _UMT5_XXL_B, 0.7, activations_gib=12.0, untiled_decode_gib=20.5, measured_gib=(("full", 53.8),)
            ),
            why="720p at 24 fps from a 5B model with a high-compression VAE: Wan quality on a 24 GB card",
            supports_image=False,
            supports_video=False,
            source="FACTS.md (WanTransformer3DModel 30 layers, 48 latent channels); Wan 2.2 model card "
            "(1280x704, 24 fps, 121 frames)",
        ),
        ModelPreset(
            name="wan2.1-1.3b",
            title="Wan 2.1 T2V 1.3B",
            family="wan",
            repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            revision=None,
            pipeline_class="WanPipeline",
            native_sizes=_WAN_480P,
            fps=16,
            frame_multiple=4,
            size_multiple=16,
            max_segment_frames=81,
            conditioning_frames=9,
            default_steps=30,
            default_guidance=5.0,
            download_gib=29.0,
            memory=MemoryNeeds(1.42, _UMT5_XXL_B, 0.13, activations_gib=3.0, untiled_decode_gib=4.0),
            why="the small card's model: 480p in about 8 GB, text-to-video only",
            supports_image=False,
            supports_video=False,
            source="diffusers WanPipeline docstring (repo id); Wan 2.1 model card (480p, 16 fps, 8.19 GB)",
        ),
        ModelPreset(
            name="wan2.1-vace-1.3b",
            title="Wan 2.1 VACE 1.3B",
            family="wan",
            repo="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
            revision=None,
            pipeline_class="WanVACEPipeline",
            subject_conditioning="reference_images",
            native_sizes=_WAN_480P,
            fps=16,
            frame_multiple=4,
            size_multiple=16,
            max_segment_frames=81,
            conditioning_frames=9,
            default_steps=30,
            default_guidance=5.0,
            download_gib=30.0,
            memory=MemoryNeeds(1.6, _UMT5_XXL_B, 0.13, activations_gib=3.5, untiled_decode_gib=4.0),
            why="Wan on a small card that can also start from an image and extend clips (VACE conditioning)",
            source="diffusers WanVACEPipeline docstring (repo id)",
        ),
        ModelPreset(
            name="ltx-2b-legacy",
            title="LTX-Video 0.9.1 2B (legacy)",
            family="ltx",
            repo="Lightricks/LTX-Video",
            revision="05be24f065a268e3b7881b63a114dbf52ce68fd1",
            pipeline_class="LTXConditionPipeline",
            subject_conditioning="image_condition",
            native_sizes=_LTX_SIZES,
            fps=24,
            frame_multiple=8,
            size_multiple=32,
            max_segment_frames=121,
            conditioning_frames=17,
            default_steps=30,
            default_guidance=3.0,
            download_gib=18.0,
            memory=MemoryNeeds(1.92, _T5_XXL_B, 0.42, activations_gib=1.6, untiled_decode_gib=2.0),
            why="Hanul's earlier default, kept so installations made with it keep working; fast but dated",
            source="FACTS.md (commit 05be24f, 'Diffusers weights'); peak 17.8 GiB measured on an H100",
        ),
    )
}

DEFAULT_PRESET = "ltx-13b-distilled"


def find_preset(name: str) -> ModelPreset | None:
    """The preset called `name` (case-insensitive), or the preset whose repo is `name`; None when neither."""
    key = name.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    return next((preset for preset in PRESETS.values() if preset.repo.lower() == key), None)


def pick_tier(needs: MemoryNeeds, free_gib: float, fp8: bool = False) -> str:
    """The fastest tier whose estimated peak fits in `free_gib` (with a tenth kept spare); `low` when none does.
    With `fp8` compact is no candidate: balanced with GENERATOR_FP8 holds the transformer in float8 too, and its
    float8 matmuls compile (compact's casting does not)."""
    for tier in TIERS[:-1]:
        if fp8 and tier == "compact":
            continue
        if needs.peak_gib(tier, fp8) <= free_gib * 0.9:
            return tier
    return "low"


def cards_that_fit(needs: MemoryNeeds, tier: str) -> list[int]:
    """Which of the common consumer card sizes (GiB) the tier's estimated peak fits on."""
    peak = needs.peak_gib(tier)
    return [card for card in CONSUMER_CARDS_GIB if peak <= card * 0.95]
