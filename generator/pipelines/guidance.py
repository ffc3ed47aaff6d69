"""Guidance on the first part of the steps only (`GENERATOR_GUIDANCE_STOP`): an approximate speed lever, off by
default (1.0: every step guided).

Classifier-free guidance doubles a step's work: beside the prediction for the prompt, the model predicts for the
negative prompt, and the step moves along `negative + scale × (prompt − negative)`. Late steps refine detail, where
guidance matters least. With a stop below 1, the steps from `int(stop × steps)` on (never the first) use the
prompt's prediction alone: the rule of diffusers' own `ClassifierFreeGuidance(stop=…)` guider, which the regular
pipelines this generator runs do not offer. Those steps cost half.

It is a diffusers `ModelHook` on the transformer, so the pipelines' own loops run unchanged:
- LTX-Video predicts both in one batch, negative half first. On an unguided step the hook runs the prompt's half
  alone and returns it for both halves, so the pipeline's `negative + scale × (prompt − negative)` is the prompt's.
  That half runs under its own cache context (`prompt_only`), so a step cache keeps its batch-of-one state apart.
- Wan predicts them in two calls (`cond`, then `uncond`). On an unguided step the `uncond` call returns the `cond`
  call's output without computing anything.
"""

from __future__ import annotations

import logging

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import BaseState, StateManager

from ._common import transformers_of

log = logging.getLogger(__name__)

HOOK_NAME = "hanul_guidance_stop"
NEGATIVE_CALL = "uncond"  # Wan's name for the negative prompt's call; its other calls each start a step
PROMPT_ONLY = "prompt_only"  # the cache context of LTX's half-batch calls


class _NoState(BaseState):
    def reset(self) -> None:
        pass


class _Steps:
    """Where the current render is, shared by the hooks of a pipeline's transformers (Wan 2.2 has two)."""

    def __init__(self) -> None:
        self.index = -1  # the step the last call belonged to
        self.prompt_output: object = None  # Wan: the `cond` call's output of this step

    def reset(self) -> None:
        self.index = -1
        self.prompt_output = None


def guided_steps(stop: float, steps: int) -> int:
    """How many of `steps` steps, from the first, are guided: `int(stop × steps)`, at least one."""
    return max(1, int(stop * steps))


class GuidanceStop(ModelHook):
    _is_stateful = True  # diffusers resets it at the end of a call, and `reset_render_state` before each render

    def __init__(self, pipeline: object, stop: float, steps: _Steps) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.stop = stop
        self.steps = steps
        # diffusers hands cache contexts ("cond", "uncond", "cond_uncond") to the StateManagers of stateful hooks.
        self.calls = StateManager(_NoState)

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.steps.reset()
        self.calls.set_context(None)
        return module

    def new_forward(self, module: torch.nn.Module, *args: object, **kwargs: object) -> object:
        try:
            name = self.calls.context.name
        except ValueError:  # no context set
            name = None
        forward = self.fn_ref.original_forward
        if name is None:  # a pipeline that names no calls: nothing to go by, so every step stays guided
            return forward(*args, **kwargs)
        if name != NEGATIVE_CALL:
            self.steps.index += 1
        guided = self.steps.index < guided_steps(self.stop, self.pipeline.num_timesteps)
        if guided:
            output = forward(*args, **kwargs)
            if name != NEGATIVE_CALL:
                self.steps.prompt_output = output
            return output
        if name == NEGATIVE_CALL:  # Wan: the negative prediction is the prompt's, already computed
            return self.steps.prompt_output
        hidden_states = kwargs.get("hidden_states", args[0] if args else None)
        if args or not isinstance(hidden_states, torch.Tensor) or hidden_states.shape[0] % 2:
            output = forward(*args, **kwargs)  # not a batch of [negative, prompt] halves: a separate prompt call
            self.steps.prompt_output = output
            return output
        half = hidden_states.shape[0] // 2
        prompt_half = {
            key: value[half:] if isinstance(value, torch.Tensor) and value.shape[:1] == (2 * half,) else value
            for key, value in kwargs.items()
        }
        with module.cache_context(PROMPT_ONLY):
            output = forward(**prompt_half)
        return _doubled(output)


def _doubled(output: object) -> object:
    """The prompt's prediction for both halves of the batch (a tensor, or diffusers' tuple / output object)."""
    if isinstance(output, torch.Tensor):
        return torch.cat([output, output])
    if isinstance(output, tuple):
        return tuple(_doubled(item) for item in output)
    if hasattr(output, "sample"):
        output.sample = torch.cat([output.sample, output.sample])
        return output
    raise TypeError(f"GENERATOR_GUIDANCE_STOP: cannot batch a transformer output of type {type(output).__name__}")


def apply_guidance_stop(pipeline: object, stop: float) -> None:
    """Guide only the first `stop` of the steps (see the module's text); 1.0 changes nothing and adds no hook."""
    if stop >= 1.0:
        return
    steps = _Steps()
    for transformer in transformers_of(pipeline):
        HookRegistry.check_if_exists_or_initialize(transformer).register_hook(
            GuidanceStop(pipeline, stop, steps), HOOK_NAME
        )
    log.info("guidance on the first %g of the steps only", stop)


def remove_guidance_stop(pipeline: object) -> None:
    """Undo `apply_guidance_stop`."""
    for transformer in transformers_of(pipeline):
        registry = getattr(transformer, "_diffusers_hook", None)
        if registry is not None and registry.get_hook(HOOK_NAME) is not None:
            registry.remove_hook(HOOK_NAME, recurse=False)
