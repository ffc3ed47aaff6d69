"""Wan's guided step in one transformer call instead of two (issue 22): an opt-in lever, measured by the Wan sweep
(`compiled_one_batch`) before any setting uses it.

diffusers' `WanPipeline` predicts for the prompt (`cond`) and for the negative prompt (`uncond`) in two calls per
step, each a batch of one; LTX-Video's pipelines batch the two. This `ModelHook` on the transformer makes Wan do
the same without changing the pipeline's loop: the `cond` call computes nothing and returns an empty output
tensor; the `uncond` call runs both in one batch (prompt first), fills the `cond` output in place and returns the
negative prompt's half. The pipeline reads the `cond` output only after the `uncond` call (`noise_uncond + scale ×
(noise_pred − noise_uncond)`), so it sees both predictions as before. Exact up to the kernels' rounding for a batch
of two instead of one (tests/generator/test_cfg_batch.py bounds it). Without guidance (one call a step) nothing
changes. It keeps its own state, so it refuses to share the transformer with the step cache and the guidance stop,
whose per-call contexts it would confuse.
"""

from __future__ import annotations

import logging

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import BaseState, StateManager

from ._common import transformers_of

log = logging.getLogger(__name__)

HOOK_NAME = "hanul_one_batch_guidance"
_BATCHED = ("hidden_states", "timestep", "encoder_hidden_states", "encoder_hidden_states_image")
_GUIDANCE_STOP = "hanul_guidance_stop"  # guidance.HOOK_NAME


class _NoState(BaseState):
    def reset(self) -> None:
        pass


class OneBatchGuidance(ModelHook):
    _is_stateful = True  # reset at the end of a call by diffusers, and before each render (`reset_render_state`)

    def __init__(self, pipeline: object) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.calls = StateManager(_NoState)  # diffusers hands it the pipeline's cache contexts ("cond", "uncond")
        self.pending: tuple[dict, torch.Tensor] | None = None  # the `cond` call's inputs and its output to fill
        self.batched_calls = 0

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.pending = None
        self.calls.set_context(None)
        return module

    def new_forward(self, module: torch.nn.Module, *args: object, **kwargs: object) -> object:
        try:
            name = self.calls.context.name
        except ValueError:  # no context set: not the pipeline's loop
            name = None
        forward = self.fn_ref.original_forward
        guided = bool(getattr(self.pipeline, "do_classifier_free_guidance", False))
        if args or name not in ("cond", "uncond") or not guided:
            self.pending = None
            return forward(*args, **kwargs)
        if name == "cond":
            hidden_states = kwargs["hidden_states"]
            shape = (hidden_states.shape[0], module.config.out_channels, *hidden_states.shape[2:])
            output = torch.empty(shape, dtype=hidden_states.dtype, device=hidden_states.device)
            self.pending = (kwargs, output)
            return _as_returned(output, kwargs)
        if self.pending is None:  # an `uncond` call without its `cond`: compute it as asked
            return forward(*args, **kwargs)
        prompt_kwargs, prompt_output = self.pending
        self.pending = None
        batch = {**kwargs}
        for key in _BATCHED:
            first, second = prompt_kwargs.get(key), kwargs.get(key)
            if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor):
                batch[key] = torch.cat([first, second])
        both = forward(**{**batch, "return_dict": False})[0]
        self.batched_calls += 1
        half = prompt_output.shape[0]
        prompt_output.copy_(both[:half])
        return _as_returned(both[half:], kwargs)


def _as_returned(sample: torch.Tensor, kwargs: dict) -> object:
    """The transformer's output as the call asked for it: a tuple (`return_dict=False`), else its output object."""
    if not kwargs.get("return_dict", True):
        return (sample,)
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    return Transformer2DModelOutput(sample=sample)


def apply_one_batch_guidance(pipeline: object) -> list[OneBatchGuidance]:
    """Batch each guided step's two calls into one, on each transformer of a Wan pipeline. Returns the hooks."""
    if "Wan" not in type(pipeline).__name__:
        raise ValueError(f"one-batch guidance is for Wan's two-call pipelines, not {type(pipeline).__name__}")
    hooks = []
    for transformer in transformers_of(pipeline):
        registry = HookRegistry.check_if_exists_or_initialize(transformer)
        clashing = [
            name
            for name, there in (
                ("a step cache (GENERATOR_FIRST_BLOCK_CACHE)", getattr(transformer, "is_cache_enabled", False)),
                ("GENERATOR_GUIDANCE_STOP", registry.get_hook(_GUIDANCE_STOP) is not None),
            )
            if there
        ]
        if clashing:
            raise ValueError(f"one-batch guidance cannot share the transformer with {' or '.join(clashing)}")
        hook = OneBatchGuidance(pipeline)
        registry.register_hook(hook, HOOK_NAME)
        hooks.append(hook)
    log.info("Wan: prompt and negative prompt predicted in one batch")
    return hooks


def remove_one_batch_guidance(pipeline: object) -> None:
    """Undo `apply_one_batch_guidance` (compiled blocks need no recompiling: the hook sits outside them)."""
    for transformer in transformers_of(pipeline):
        registry = getattr(transformer, "_diffusers_hook", None)
        if registry is not None and registry.get_hook(HOOK_NAME) is not None:
            registry.remove_hook(HOOK_NAME, recurse=False)
