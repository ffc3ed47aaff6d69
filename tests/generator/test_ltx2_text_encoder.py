"""LTX-2's text encoder as Hanul keeps it (`ltx2.trim_text_encoder`): LTX-2's checkpoints hold Gemma 3 whole, vision
tower included, as `Gemma3ForConditionalGeneration`; the tiny pipeline here does too. The vision tower is dropped at
load, the encode computes no logits and no cache, and the prompt's embeddings are unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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


def test_the_encode_computes_no_logits_and_no_cache():
    pipeline = with_whole_gemma()
    embedding = pipeline.text_encoder.get_input_embeddings().weight
    assert pipeline.text_encoder.lm_head.weight is embedding  # Gemma ties them: the output layer is the embedding
    seen = []
    pipeline.text_encoder.register_forward_hook(lambda module, args, output: seen.append(output))
    embeddings(pipeline)
    vocabulary = pipeline.text_encoder.config.get_text_config().vocab_size
    assert seen[0].logits.shape[1:] == (64, vocabulary) and seen[0].past_key_values is not None  # the default
    trim_text_encoder(pipeline)
    embeddings(pipeline)
    assert seen[1].logits.shape[1:] == (64, 0) and seen[1].past_key_values is None
    assert all(torch.equal(a, b) for a, b in zip(seen[0].hidden_states, seen[1].hidden_states, strict=True))
    # The embedding stays, once: the output layer holds no weight of its own to place or stream.
    assert list(pipeline.text_encoder.lm_head.parameters()) == []
    assert pipeline.text_encoder.get_input_embeddings().weight is embedding


def test_the_tiny_language_model_is_trimmed_the_same_way():
    """The tiny model's Gemma has no vision tower (`Gemma3ForCausalLM`): only its output layer and cache go."""
    pipeline = build_tiny_ltx2_pipeline()
    before = embeddings(pipeline)
    trim_text_encoder(pipeline)
    assert list(pipeline.text_encoder.lm_head.parameters()) == []
    assert torch.equal(embeddings(pipeline), before)


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


def onloaded_bytes_per_encode(monkeypatch: pytest.MonkeyPatch, pipeline) -> int:
    """Bytes the streamed tiers' offload groups copy to the device for one encode (memory.stream_layers; on a CPU
    the groups move nothing but onload exactly as on a GPU)."""
    from diffusers.hooks.group_offloading import ModuleGroup

    from generator.pipelines.memory import stream_layers
    from tests.generator.test_memory_tiers import group_bytes

    stream_layers(pipeline.text_encoder, torch.device("cpu"), streams=False)
    copied = []
    onload = ModuleGroup.onload_

    def counted(group):
        copied.append(group_bytes(group))
        return onload(group)

    with monkeypatch.context() as patched:
        patched.setattr(ModuleGroup, "onload_", counted)
        embeddings(pipeline)
    return sum(copied)


def test_a_streamed_encode_copies_the_tied_embedding_once(monkeypatch):
    """Gemma's output layer is its input embedding (2 GiB of Gemma 3 12B's weights): streamed, the untrimmed encode
    copied it to the GPU twice, once to look the tokens up and once more for logits nobody reads."""
    whole, trimmed = with_whole_gemma(), with_whole_gemma()
    trim_text_encoder(trimmed)
    embedding = whole.text_encoder.get_input_embeddings().weight
    table = embedding.numel() * embedding.element_size()
    before, after = onloaded_bytes_per_encode(monkeypatch, whole), onloaded_bytes_per_encode(monkeypatch, trimmed)
    assert before - after == table, (before, after, table)
    assert torch.equal(embeddings(trimmed), embeddings(whole))
