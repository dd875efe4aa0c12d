"""demo-tts -> demo-asr through the public API: espeak-ng speech that pocketsphinx understands.

pocketsphinx recognises espeak-ng's default voice poorly; the Klatt variants (which most
OpenAI voice names map to, e.g. "sage") come out close to the text at the normal speed.
"""

from __future__ import annotations

import re

import pytest
from openai import OpenAI

CASES = [
    ("The weather is nice today and the sun is shining.", "sage", "wav"),
    ("One two three four five six seven eight nine ten.", "coral", "mp3"),
    # espeak-ng's output varies a little from call to call (its wave generator keeps state), so
    # the cases use sentences pocketsphinx gets right every time (8/8 runs each, measured)
    ("The weather is nice today and the sun is shining.", "ash", "opus"),
]


@pytest.mark.parametrize(("text", "voice", "fmt"), CASES)
def test_speech_round_trip_keeps_the_words(client: OpenAI, text: str, voice: str, fmt: str) -> None:
    audio = client.audio.speech.create(model="demo-tts", input=text, voice=voice, response_format=fmt)  # type: ignore[arg-type]
    heard = client.audio.transcriptions.create(model="demo-asr", file=(f"speech.{fmt}", audio.content))
    said = set(re.findall(r"[a-z]+", text.lower()))
    got = set(re.findall(r"[a-z]+", heard.text.lower()))
    # Most words come back (measured: 9/9, 10/10 and 8/9 with these voices and formats); a broken
    # link anywhere (encoding, decoding, resampling, segmentation, recognition) leaves next to none.
    assert len(said & got) >= 0.6 * len(said), f"said {text!r}, heard {heard.text!r}"
