"""Tiny LTX-Video and Wan pipelines built from small configs with random weights, for tests and offline smoke runs.

They exercise the same diffusers classes, shapes and conditioning paths as the real models, and render a 64×64,
17-frame clip in a fraction of a second on a CPU. Their pictures mean nothing: the weights are random. They are
never a substitute for loading real weights, which `save_tiny_pipeline` → `load_backend` tests end to end.
"""

from __future__ import annotations

import json
import string
from dataclasses import asdict, replace
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    AutoencoderKLWan,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    LTXConditionPipeline,
    LTXVideoTransformer3DModel,
    UniPCMultistepScheduler,
    WanPipeline,
    WanVACEPipeline,
    WanVACETransformer3DModel,
)
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from ..catalog import ModelPreset
from .base import ModelProfile

TINY_NAME = "tiny"
TINY_SOUND_NAME = "tiny-sound"  # an LTX-2 shaped model: video with sound
PROFILE_FILE = "hanul_profile.json"  # profile overrides a local model folder may carry (see load_profile_overrides)
_TEXT_DIM = 32
# The pipelines pad and cut prompts at their own max_sequence_length; the tokenizer only warns about prompts longer
# than this (a character-level vocabulary makes every prompt long), so it is T5's own limit.
_TOKENIZER_MAX_LENGTH = 512

TINY_LTX_PROFILE = ModelProfile(
    family="ltx",
    name=TINY_NAME,
    fps=8,
    frame_multiple=8,
    size_multiple=32,
    native_sizes={"landscape": (96, 64), "portrait": (64, 96), "square": (64, 64)},
    max_segment_frames=17,
    default_steps=2,
    default_guidance=1.0,
    conditioning_frames=9,
    max_side=256,
    min_side=32,
    subject_conditioning="image_condition",
)

TINY_WAN_PROFILE = ModelProfile(
    family="wan",
    name=TINY_NAME,
    fps=8,
    frame_multiple=4,
    size_multiple=16,
    native_sizes={"landscape": (96, 64), "portrait": (64, 96), "square": (64, 64)},
    max_segment_frames=17,
    default_steps=2,
    default_guidance=1.0,
    conditioning_frames=5,
    max_side=256,
    min_side=16,
    subject_conditioning="reference_images",  # the tiny Wan is a VACE pipeline
)

# The tiny LTX's shape and limits; LTX-2's family, sound, and what LTX-2 cannot do (generator.pipelines.ltx2).
TINY_SOUND_PROFILE = replace(
    TINY_LTX_PROFILE,
    family="ltx2",
    name=TINY_SOUND_NAME,
    subject_conditioning="",
    audio_sample_rate=16_000,
    supports_edit=False,
)


# Lightricks/LTX-Video's scheduler_config.json (0.9.0/0.9.1), also bench/baseline_ltx.py's.
LTX_DEFAULT_SCHEDULER = dict(
    use_dynamic_shifting=True,
    base_shift=0.95,
    max_shift=2.05,
    base_image_seq_len=1024,
    max_image_seq_len=4096,
    shift_terminal=0.1,
)


def _tiny_tokenizer() -> T5Tokenizer:
    """A character-level T5 tokenizer that needs no files, so different prompts give different token ids."""
    pieces = ["<pad>", "</s>", "<unk>", "▁", *string.ascii_lowercase, *string.digits]
    vocab = [(piece, 0.0 if index < 3 else -1.0) for index, piece in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=_TOKENIZER_MAX_LENGTH)


def _tiny_text_encoder(vocab_size: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=vocab_size, d_model=_TEXT_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=4, dropout_rate=0.0
    )
    return T5EncoderModel(config).eval()


def build_tiny_ltx_pipeline(seed: int = 0, variant: str = "0.9.1") -> LTXConditionPipeline:
    """An `LTXConditionPipeline` with LTX's compression ratios (32× space, 8× time) and tiny layers.

    `variant` "0.9.1" has the scheduler of the 0.9.0/0.9.1 checkpoints (it shifts by the video's size); "0.9.8" the
    config of 0.9.5+ (the 0.9.8 distilled preset): a scheduler that does not shift, a VAE that decodes with
    timestep conditioning (so the decode timestep and noise are passed, as for the real one)."""
    torch.manual_seed(seed)  # the random weights themselves are seeded, so every build is the same model
    tokenizer = _tiny_tokenizer()
    text_encoder = _tiny_text_encoder(len(tokenizer))
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=2,  # step caches (FirstBlockCache) need a first block and the rest
        caption_channels=_TEXT_DIM,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=variant != "0.9.1",
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    # The default model's scheduler (Lightricks/LTX-Video 0.9.0/0.9.1): it shifts by the video's size, which is the
    # path LTXBackend has to handle itself (0.9.5+ schedulers do not shift). Tests then run what users run.
    if variant == "0.9.1":
        scheduler = FlowMatchEulerDiscreteScheduler(**LTX_DEFAULT_SCHEDULER)
    elif variant == "0.9.8":
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, shift=1.0)
    else:
        raise ValueError(f"unknown tiny LTX variant {variant!r}")
    pipeline = LTXConditionPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _tiny_wan_vae(variant: str = "2.1") -> AutoencoderKLWan:
    if variant == "2.2-5b":  # Wan 2.2's high-compression VAE: 48 latent channels, 16x space (diffusers' own test)
        return AutoencoderKLWan(
            base_dim=3,
            z_dim=48,
            in_channels=12,
            out_channels=12,
            is_residual=True,
            patch_size=2,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            temperal_downsample=[False, True, True],
        )
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )


WAN_VARIANTS = ("2.1", "2.2-5b", "2.2-a14b")


def build_tiny_wan_pipeline(seed: int = 0, vace: bool = True, variant: str = "2.1") -> WanPipeline | WanVACEPipeline:
    """A Wan pipeline (VACE, which can continue, unless `vace=False`) with Wan's ratios and tiny layers.

    `variant` "2.2-5b" is shaped like Wan 2.2 TI2V 5B (48-channel VAE, per-token timesteps: `expand_timesteps`),
    "2.2-a14b" like Wan 2.2 A14B (a second transformer for the low-noise steps, `boundary_ratio`)."""
    if variant not in WAN_VARIANTS or (vace and variant != "2.1"):
        raise ValueError(f"unknown tiny Wan variant {variant!r} (VACE: 2.1 only)")
    torch.manual_seed(seed)
    tokenizer = _tiny_tokenizer()
    text_encoder = _tiny_text_encoder(len(tokenizer))
    common = dict(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=16,  # inner width 32: a multiple of 16, as float8 matmuls need (real Wan: 1536)
        in_channels=48 if variant == "2.2-5b" else 16,
        out_channels=48 if variant == "2.2-5b" else 16,
        text_dim=_TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    vae = _tiny_wan_vae(variant)
    # Wan 2.1's own scheduler, as its Diffusers checkpoints ship it.
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=3.0
    )
    if vace:
        # VACE context: video latents (16) + reactive latents (16) + the mask folded into 8×8 = 64 channels.
        transformer = WanVACETransformer3DModel(**common, vace_layers=[0], vace_in_channels=96)
        pipeline: WanPipeline | WanVACEPipeline = WanVACEPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer
        )
    else:
        from diffusers import WanTransformer3DModel

        transformer = WanTransformer3DModel(**common)
        two = variant == "2.2-a14b"
        pipeline = WanPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            scheduler=scheduler,
            transformer=transformer,
            transformer_2=WanTransformer3DModel(**common) if two else None,
            boundary_ratio=0.875 if two else None,  # Wan 2.2 A14B's: high-noise expert for the first 1/8 of noise
            expand_timesteps=variant == "2.2-5b",
        )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


_TINY_VOCODER_UPSAMPLING = {16_000: [8, 5, 4], 48_000: [8, 6, 10]}  # mel frames (100 a second) to samples


def build_tiny_ltx2_pipeline(seed: int = 0, sample_rate: int = 16_000) -> DiffusionPipeline:
    """An `LTX2ConditionPipeline` (video and sound) with LTX-2's ratios (32x space, 8x time, mel frames of a
    160-sample hop at 16 kHz, which its vocoder upsamples back to real time at `sample_rate`: 16 kHz, or 48 kHz as
    LTX-2.3's) and tiny layers. The text encoder is a two-layer Gemma 3 language model: the pipeline stacks its
    hidden states as LTX-2 does Gemma 3 12B's."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        LTX2ConditionPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    tokenizer = _tiny_tokenizer()
    text_config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=_TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=_TOKENIZER_MAX_LENGTH * 2,
        sliding_window=64,
    )
    text_encoder = Gemma3ForCausalLM(text_config).eval()
    split_rope = dict(rope_double_precision=False, rope_type="split")
    transformer = LTX2VideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        caption_channels=_TEXT_DIM,
        **split_rope,
    )
    connector = dict(num_attention_heads=4, attention_head_dim=8, num_layers=1, num_learnable_registers=None)
    connectors = LTX2TextConnectors(
        caption_channels=_TEXT_DIM,
        text_proj_in_factor=text_config.num_hidden_layers + 1,  # every hidden state, embeddings included
        **{f"{branch}_connector_{key}": value for branch in ("video", "audio") for key, value in connector.items()},
        connector_rope_base_seq_len=32,
        rope_theta=10000.0,
        causal_temporal_positioning=False,
        **split_rope,
    )
    vae = AutoencoderKLLTX2Video(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 16, 32),  # each up block halves its input's channels, as in the real one
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        decoder_causal=False,
        decoder_spatial_padding_mode="zeros",  # reflect padding needs more than the tiny latents' 2x3
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=8,
    )
    vocoder = LTX2Vocoder(
        in_channels=2 * 8,  # output channels x mel bins of the audio VAE
        hidden_channels=16,
        out_channels=2,
        upsample_kernel_sizes=[2 * factor for factor in _TINY_VOCODER_UPSAMPLING[sample_rate]],
        upsample_factors=_TINY_VOCODER_UPSAMPLING[sample_rate],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=sample_rate,
    )
    pipeline = LTX2ConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def build_tiny_like(preset: ModelPreset, seed: int = 0) -> DiffusionPipeline:
    """A tiny random-weight pipeline of the preset's class and config keys, as its hub repo would hold it."""
    if preset.family == "ltx2":
        return build_tiny_ltx2_pipeline(seed, sample_rate=preset.audio_sample_rate)
    if preset.family == "ltx":
        return build_tiny_ltx_pipeline(seed, variant="0.9.1" if preset.revision else "0.9.8")
    if preset.pipeline_class == "WanVACEPipeline":
        return build_tiny_wan_pipeline(seed, vace=True)
    variant = {"Wan-AI/Wan2.2-TI2V-5B-Diffusers": "2.2-5b", "Wan-AI/Wan2.2-T2V-A14B-Diffusers": "2.2-a14b"}
    return build_tiny_wan_pipeline(seed, vace=False, variant=variant.get(preset.repo, "2.1"))


def save_tiny_pipeline(folder: Path, family: str = "ltx") -> Path:
    """Save a tiny pipeline with `save_pretrained`, plus its profile, so `load_backend(folder)` can load it."""
    folder = Path(folder)
    if family == "ltx":
        pipeline, profile = build_tiny_ltx_pipeline(), TINY_LTX_PROFILE
    elif family == "wan":
        pipeline, profile = build_tiny_wan_pipeline(), TINY_WAN_PROFILE
    elif family == "ltx2":
        pipeline, profile = build_tiny_ltx2_pipeline(), TINY_SOUND_PROFILE
    else:
        raise ValueError(f"unknown tiny family {family!r}; use 'ltx', 'ltx2' or 'wan'")
    pipeline.save_pretrained(folder)
    overrides = {key: value for key, value in asdict(profile).items() if key not in ("family", "name")}
    (folder / PROFILE_FILE).write_text(json.dumps(overrides, indent=2))
    return folder
