"""How far one latent frame reaches in LTX-Video's VAE decoder: which output frames change when it does.

Whether a clip's first frames could reach the MP4 encoder while the rest still decode (a decode in temporal chunks)
depends on it: a chunk's frames are the whole decode's only where no latent frame outside the chunk reaches them.
The decoder is built with the layout of LTX-Video 0.9.5+'s VAE (5 layers per block, three residual 2× spatio-
temporal upsamplers, non-causal convolutions that pad with the edge frames: diffusers' conversion script) but
narrow channels and random weights: the reach depends on the layer counts, not on the widths or the weights.
CPU only, a few seconds. Prints one JSON line.

    python bench/decoder_reach.py [--latent-frames 16]
"""

from __future__ import annotations

import argparse
import json

import torch
from diffusers import AutoencoderKLLTXVideo


def ltx_095_layout_decoder() -> torch.nn.Module:
    vae = AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(16, 32, 64),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(5, 5, 5, 5),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    return vae.decoder.eval()


def reach(decoder: torch.nn.Module, latent_frames: int, probes: list[int]) -> dict[str, object]:
    """For each probed latent frame: the first and last output frame that change when it changes."""
    torch.manual_seed(0)
    latents = torch.randn(1, decoder.conv_in.in_channels, latent_frames, 1, 1)
    with torch.no_grad():
        base = decoder(latents, None)
        result: dict[str, object] = {"latent_frames": latent_frames, "output_frames": base.shape[2]}
        for index in probes:
            moved = latents.clone()
            moved[:, :, index] += 1.0
            changed = ((decoder(moved, None) - base).abs().amax(dim=(0, 1, 3, 4)) > 1e-6).nonzero().flatten()
            result[f"latent_{index}_reaches"] = [int(changed.min()), int(changed.max())]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latent-frames", type=int, default=16, help="16: a 121-frame clip")
    args = parser.parse_args(argv)
    frames = args.latent_frames
    print(json.dumps(reach(ltx_095_layout_decoder(), frames, sorted({0, frames // 2, frames - 1}))))


if __name__ == "__main__":
    main()
