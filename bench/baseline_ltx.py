# Copied from the project's shared benchmark (shared/bench/baseline_ltx.py), reformatted by ruff and otherwise
# unchanged, so it travels with the repository to a GPU machine. bench_generator.py builds its pipelines with it.
"""Baseline: the plain diffusers LTX-Video pipeline at its real size, random weights, on one GPU.

Random weights cost exactly what trained ones cost, so these times are the real price of a clip.
Nothing is downloaded. Prints one JSON object (and writes it to --out FILE when given).

Run it on the same GPU, in the same run, as your own benchmark and report your time as a ratio to this
one. Needs torch with CUDA, transformers, tokenizers and diffusers.

    python3 baseline_ltx.py [--steps 20] [--frames 121] [--width 768] [--height 512] [--repeats 3] [--out FILE]
"""

import argparse
import contextlib
import json
import time

import torch


def build_tokenizer(vocab: int = 32128, max_len: int = 128):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"w{i}": i for i in range(vocab - 2)}
    words["<pad>"], words["<unk>"] = vocab - 2, vocab - 1
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", model_max_length=max_len)


@contextlib.contextmanager
def on_gpu_bf16():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_pipeline():
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    with on_gpu_bf16():
        transformer = LTXVideoTransformer3DModel().eval()  # defaults = LTX-Video 2B
        vae = AutoencoderKLLTXVideo().eval()  # defaults = LTX-Video 0.9.0 VAE
        text_encoder = T5EncoderModel(
            T5Config(
                vocab_size=32128,
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=24,
                num_heads=64,
                feed_forward_proj="gated-gelu",
            )
        ).eval()  # T5-XXL shape
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    pipe = LTXPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=build_tokenizer(), transformer=transformer
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def seconds(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="also write the JSON result to this file")
    a = ap.parse_args()

    import diffusers

    pipe = build_pipeline()
    call = dict(
        prompt="w1 w2 w3 w4",
        negative_prompt="w5",
        width=a.width,
        height=a.height,
        num_frames=a.frames,
        guidance_scale=a.guidance,
        num_inference_steps=a.steps,
    )
    with torch.no_grad():
        pipe(**{**call, "num_inference_steps": 2}, output_type="latent")  # warm-up
        full = sorted(
            seconds(lambda: pipe(**call, output_type="np", generator=torch.Generator("cuda").manual_seed(0)))
            for _ in range(a.repeats)
        )
        denoise = sorted(
            seconds(lambda: pipe(**call, output_type="latent", generator=torch.Generator("cuda").manual_seed(0)))
            for _ in range(a.repeats)
        )
    result = {
        "what": "plain diffusers LTXPipeline, bf16, eager, random weights at real size",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "width": a.width,
        "height": a.height,
        "frames": a.frames,
        "steps": a.steps,
        "guidance": a.guidance,
        "full_call_s_median": round(full[len(full) // 2], 3),
        "denoise_only_s_median": round(denoise[len(denoise) // 2], 3),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
    }
    print(json.dumps(result))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
