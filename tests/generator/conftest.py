"""The tiny models, built once per test session: random weights, real diffusers classes."""

from __future__ import annotations

import logging

import pytest

from generator.pipelines import VideoBackend, load_backend
from generator.settings import GeneratorSettings
from tests.support.generator_service import client, tiny_generator  # noqa: F401  (fixtures)


def tiny_settings(model: str = "tiny", family: str = "auto") -> GeneratorSettings:
    """Settings for a tiny model on the CPU, whatever the developer's environment or .env says."""
    return GeneratorSettings(
        GENERATOR_MODEL=model,
        GENERATOR_MODEL_FAMILY=family,
        GENERATOR_DEVICE="cpu",
        GENERATOR_DTYPE="float32",
        GENERATOR_CPU_OFFLOAD=False,
        GENERATOR_VAE_TILING=False,
    )


@pytest.fixture(scope="session", autouse=True)
def quiet_diffusers() -> None:
    # LTXConditionPipeline warns on every call that it passes timesteps without sigmas (its own schedule).
    logging.getLogger("diffusers.schedulers.scheduling_flow_match_euler_discrete").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def tiny_ltx() -> VideoBackend:
    return load_backend(tiny_settings())


@pytest.fixture(scope="session")
def tiny_wan() -> VideoBackend:
    pytest.importorskip("ftfy", reason="diffusers' Wan pipelines clean prompts with ftfy")
    return load_backend(tiny_settings(family="wan"))
