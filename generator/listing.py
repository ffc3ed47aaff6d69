"""`python -m generator models`: the catalog as a table, with what each preset needs and whether it is here."""

from __future__ import annotations

from .catalog import PRESETS, TIER_MEANINGS, TIERS, MemoryNeeds, cards_that_fit
from .hub import is_downloaded
from .settings import GeneratorSettings


def model_rows(settings: GeneratorSettings) -> list[dict[str, str]]:
    """One row per preset: name, family, download size, estimated peak per tier, whether it is downloaded."""
    rows = []
    for preset in PRESETS.values():
        needs = preset.memory
        rows.append(
            {
                "name": preset.name + (" *" if preset.name == settings.model else ""),
                "family": preset.family,
                "model": preset.title,
                "download": f"~{preset.download_gib:.0f} GiB",
                **{tier: f"{needs.peak_gib(tier):.0f} GiB{'' if needs.is_measured(tier) else ' ~'}" for tier in TIERS},
                "24 GB card": _best_tier_on(needs, 24),
                "host RAM": f"{needs.host_ram_gib():.0f} GiB",
                "sound": "yes" if preset.audio_sample_rate else "no",
                "here": "yes" if is_downloaded(preset.name, settings.data_dir) else "no",
            }
        )
    for name, family, sound in (("tiny", "ltx/wan", "no"), ("tiny-sound", "ltx2", "yes")):
        rows.append(
            {
                "name": name + (" *" if settings.model == name else ""),
                "family": family,
                "model": "random weights (tests)" + (", with sound" if sound == "yes" else ""),
                "download": "none",
                **dict.fromkeys(TIERS, "-"),
                "24 GB card": "full",
                "host RAM": "-",
                "sound": sound,
                "here": "yes",
            }
        )
    return rows


def _best_tier_on(needs: MemoryNeeds, card_gib: int) -> str:
    return next((tier for tier in TIERS if card_gib in cards_that_fit(needs, tier)), "no")


def print_models(settings: GeneratorSettings) -> None:
    rows = model_rows(settings)
    columns = list(rows[0])
    widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in columns}
    print("  ".join(column.ljust(widths[column]) for column in columns))
    for row in rows:
        print("  ".join(row[column].ljust(widths[column]) for column in columns))
    print()
    print("* = GENERATOR_MODEL. Memory: peak GPU memory of one render per GENERATOR_MEMORY tier, measured on a GPU")
    print("at real size with random weights, or estimated from parameter counts where marked ~:")
    for tier in TIERS:
        print(f"  {tier}: {TIER_MEANINGS[tier]}")
    print("  with GENERATOR_FP8=true (FP8 tensor cores: RTX 40xx, L4, L40S, H100) full and balanced hold the")
    print("  transformer in float8 too, float8 matmuls compiled: balanced needs what compact does, auto picks it")
    print("host RAM: what loading the weights takes (bf16), and what balanced, compact and low keep there")
    print("Fetch one with: python -m generator download NAME (then set GENERATOR_MODEL=NAME)")
