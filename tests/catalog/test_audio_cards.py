from __future__ import annotations

from pathlib import Path

import pytest

from mmserve.catalog.builders import BUILDERS
from mmserve.catalog.loader import CatalogError, load_catalog, parse_catalog


def test_demo_catalog_has_the_speech_models_with_prices() -> None:
    cat = load_catalog(None)
    tts, asr = cat.get("demo-tts", task="speech"), cat.get("demo-asr", task="transcription")
    assert (tts.engine, asr.engine) == ("espeak-ng", "pocketsphinx")
    assert tts.pricing.per_audio_second > 0 and asr.pricing.per_audio_second > 0
    assert tts.source is None and asr.source is None  # real engines, nothing to build


def test_tiny_audio_models_have_builders() -> None:
    assert {"whisper", "vits"} <= set(BUILDERS)


@pytest.mark.parametrize(
    ("card", "field"),
    [
        ("task: speech\n    engine: espeak-ng\n    options: {rate_wpm: 2000}", "options.rate_wpm"),
        ("task: speech\n    engine: espeak-ng\n    options: {pitch: 3}", "options.pitch"),
        ("task: transcription\n    engine: pocketsphinx\n    options: {vad_mode: 7}", "options.vad_mode"),
        ("task: transcription\n    engine: whisper\n    options: {max_new_tokens: 0}", "options.max_new_tokens"),
        ("task: speech\n    engine: transformers-tts\n    options: {speakers: {alloy: x}}", "options.speakers.alloy"),
        ("task: speech\n    engine: whisper", "engine"),
        ("task: transcription\n    engine: espeak-ng", "engine"),
    ],
)
def test_bad_audio_cards_name_the_field(card: str, field: str) -> None:
    with pytest.raises(CatalogError) as e:
        parse_catalog(f"models:\n  - id: a\n    {card}\n", file="c.yaml", base_dir=Path("/srv"))
    assert e.value.model == "a" and e.value.field == field
