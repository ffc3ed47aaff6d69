"""`speed.compile_decoder_and_text_encoder`: the VAE decoder (LTX-Video's and LTX-2's, one pass over the latent video)
traces into one whole graph, the text encoder compiles, and a render through them gives the eager frames; Wan's
VAE, which decodes a frame at a time from a cache in Python lists, is left alone. torch.compile runs here with
its `eager` backend: dynamo's tracing (where graph breaks would show) without code generation, which the GPU
session times (`compiled_8_steps_no_guidance_decoder_text_compiled`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.pipelines import RenderRequest, speed
from generator.pipelines.ltx import LTXBackend
from generator.pipelines.ltx2 import LTX2Backend, trim_text_encoder
from generator.pipelines.tiny import (
    TINY_LTX_PROFILE,
    TINY_SOUND_PROFILE,
    build_tiny_ltx2_pipeline,
    build_tiny_ltx_pipeline,
    build_tiny_wan_pipeline,
)

REQUEST = RenderRequest(
    prompt="a paper boat in a gutter",
    width=96,
    height=64,
    num_frames=17,
    seed=5,
    num_inference_steps=2,
    guidance_scale=1.0,
)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def counted_graphs():
    """Every graph dynamo hands to the backend: (number of graphs, their op counts)."""
    graphs: list[int] = []

    def backend(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        graphs.append(len(graph.graph.nodes))
        return graph.forward

    return graphs, backend


def test_ltx_decoder_is_one_graph_and_the_frames_are_the_eager_ones():
    pipeline = build_tiny_ltx_pipeline()
    backend = LTXBackend(pipeline, TINY_LTX_PROFILE, prompt_cache_size=0)  # every render runs the text encoder
    eager = backend.render(REQUEST)
    graphs, counting = counted_graphs()
    assert speed.compile_decoder_and_text_encoder(pipeline, backend=counting) == ["vae.decoder", "text_encoder"]
    compiled = backend.render(REQUEST)
    assert len(graphs) >= 2, "the decoder's graph and the text encoder's"
    np.testing.assert_array_equal(compiled, eager)
    speed.uncompile_decoder_and_text_encoder(pipeline)
    assert pipeline.vae.decoder._compiled_call_impl is None and pipeline.text_encoder._compiled_call_impl is None


def test_ltx2_decoder_and_trimmed_gemma_compile_and_render_the_same_frames_and_sound():
    pipeline = build_tiny_ltx2_pipeline()
    trim_text_encoder(pipeline)  # its forward pre-hook is traced with the encoder
    backend = LTX2Backend(pipeline, TINY_SOUND_PROFILE, prompt_cache_size=0)
    request = RenderRequest(**{**REQUEST.__dict__, "fps": 8})
    frames, sound = backend.render_with_sound(request)
    graphs, counting = counted_graphs()
    assert speed.compile_decoder_and_text_encoder(pipeline, backend=counting) == ["vae.decoder", "text_encoder"]
    compiled_frames, compiled_sound = backend.render_with_sound(request)
    assert len(graphs) >= 2
    np.testing.assert_array_equal(compiled_frames, frames)
    np.testing.assert_array_equal(compiled_sound, sound)


def test_a_decoder_that_would_break_into_pieces_fails_loudly_rather_than_half_compiled(monkeypatch):
    """fullgraph: a graph break in the decoder is an error at the first decode, not a silent partial compile."""
    pipeline = build_tiny_ltx_pipeline()
    decoder_class = type(pipeline.vae.decoder)
    original = decoder_class.forward

    def with_a_break(self, hidden_states, temb=None):
        torch._dynamo.graph_break()
        return original(self, hidden_states, temb)

    monkeypatch.setattr(decoder_class, "forward", with_a_break)
    speed.compile_decoder_and_text_encoder(pipeline, backend="eager")
    with pytest.raises(Exception, match=r"(?i)graph.break"):
        LTXBackend(pipeline, TINY_LTX_PROFILE).render(REQUEST)


def test_wans_frame_at_a_time_decoder_is_left_alone():
    pipeline = build_tiny_wan_pipeline()
    assert speed.compile_decoder_and_text_encoder(pipeline, backend="eager") == ["text_encoder"]
    assert getattr(pipeline.vae.decoder, "_compiled_call_impl", None) is None
