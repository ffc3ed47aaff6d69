import string

import pytest

from bot.i18n import LANGUAGES, STATUS_WORDS, STRINGS, language_of, status_word, text


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(STRINGS))
def test_every_sentence_exists_in_every_language_with_the_same_placeholders(key):
    variants = STRINGS[key]
    assert set(variants) == set(LANGUAGES)
    assert _placeholders(variants["ko"]) == _placeholders(variants["en"])


def test_discord_locales_map_to_languages():
    assert language_of("ko") == "ko"
    assert language_of("en-US") == "en"
    assert language_of("pt-BR") == "en"  # no Portuguese yet: English
    assert language_of(None) == "en"


def test_text_fills_values_in_the_members_language():
    assert text("refusal.cooldown", "ko", seconds=12) == "조금만 천천히요: 12초 후에 다시 요청할 수 있습니다."
    assert "12s" in text("refusal.cooldown", "en-GB", seconds=12)


def test_status_words_cover_every_status():
    from bot import models

    for status in (models.PENDING, models.QUEUED, models.RENDERING, models.COMPLETED, models.POSTED):
        assert status in STATUS_WORDS
    assert status_word("queued", "ko") == "대기 중"
