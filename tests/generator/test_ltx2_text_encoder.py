"""LTX-2's text encoder as Hanul keeps it (`ltx2.trim_text_encoder`): LTX-2's checkpoints hold Gemma 3 whole, vision
tower included, as `Gemma3ForConditionalGeneration`; the tiny pipeline here does too. The vision tower is dropped at
load, the encode computes no logits beyond one position and no cache, and the prompt's embeddings are unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

from generator.pipelines import RenderRequest, load_backend
from generator.pipelines.ltx2 import trim_text_encoder
from generator.pipelines.tiny import build_tiny_ltx2_pipeline
from tests.generator.conftest import tiny_settings

PROMPT = "a kettle whistles on a gas stove"


def with_whole_gemma(seed: int = 0):
    """The tiny LTX-2 pipeline with its text encoder as LTX-2's repos hold it: Gemma 3 with a (tiny) vision tower."""
    pipeline = build_tiny_ltx2_pipeline(seed)
    text = pipeline.text_encoder.config
    vision = SiglipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    torch.manual_seed(seed)
    pipeline.text_encoder = Gemma3ForConditionalGeneration(
        Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)
    ).eval()
    return pipeline


def embeddings(pipeline) -> torch.Tensor:
    with torch.inference_mode():
        embeds, _ = pipeline._get_gemma_prompt_embeds(PROMPT, device=torch.device("cpu"), max_sequence_length=64)
    return embeds


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_vision_tower_is_dropped_and_the_embeddings_are_unchanged():
    pipeline = with_whole_gemma()
    before, count = embeddings(pipeline), parameters(pipeline.text_encoder)
    vision = parameters(pipeline.text_encoder.model.vision_tower)
    projector = parameters(pipeline.text_encoder.model.multi_modal_projector)
    assert vision > 0
    trim_text_encoder(pipeline)
    assert pipeline.text_encoder.model.vision_tower is None
    assert pipeline.text_encoder.model.multi_modal_projector is None
    assert parameters(pipeline.text_encoder) == count - vision - projector
    assert torch.equal(embeddings(pipeline), before)


def test_the_encode_keeps_one_position_of_logits_and_no_cache():
    pipeline = with_whole_gemma()
    seen = []
    pipeline.text_encoder.register_forward_hook(lambda module, args, output: seen.append(output))
    embeddings(pipeline)
    assert seen[0].logits.shape[1] == 64 and seen[0].past_key_values is not None  # the library's default: everything
    trim_text_encoder(pipeline)
    embeddings(pipeline)
    assert seen[1].logits.shape[1] == 1 and seen[1].past_key_values is None
    assert all(torch.equal(a, b) for a, b in zip(seen[0].hidden_states, seen[1].hidden_states, strict=True))


def test_a_caller_that_asks_for_logits_still_gets_them():
    pipeline = with_whole_gemma()
    trim_text_encoder(pipeline)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.inference_mode():
        output = pipeline.text_encoder(input_ids=ids, logits_to_keep=0, use_cache=True)
    assert output.logits.shape[1] == 4 and output.past_key_values is not None


def test_a_saved_ltx2_model_loads_without_its_vision_tower_and_renders(tmp_path: Path):
    """The real load path: save_pretrained, then load_backend from the folder (from_pretrained inside)."""
    folder = tmp_path / "ltx2-with-gemma"
    whole = with_whole_gemma()
    whole.save_pretrained(folder)
    backend = load_backend(tiny_settings(model=str(folder), family="ltx2"))
    encoder = backend.pipeline.text_encoder
    assert isinstance(encoder, Gemma3ForConditionalGeneration) and encoder.model.vision_tower is None
    request = RenderRequest(
        prompt=PROMPT, width=96, height=64, num_frames=17, seed=3, num_inference_steps=2, guidance_scale=1.0, fps=8
    )
    frames, sound = backend.render_with_sound(request)
    assert frames.shape == (17, 64, 96, 3) and sound.shape[0] == 2
    # The same frames as the untrimmed pipeline's own call (loaded weights round within a level).
    whole.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        reference = whole(
            prompt=PROMPT,
            width=96,
            height=64,
            num_frames=17,
            frame_rate=8.0,
            num_inference_steps=2,
            guidance_scale=1.0,
            stg_scale=0.0,
            modality_scale=1.0,
            audio_guidance_scale=1.0,
            audio_stg_scale=0.0,
            generator=torch.Generator("cpu").manual_seed(3),
            output_type="np",
        )
    expected = (np.asarray(reference.frames[0]) * 255).round().astype(int)
    assert np.abs(frames.astype(int) - expected).max() <= 1
