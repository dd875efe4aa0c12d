"""Segment and word parsing of decoded Whisper windows, on recorded and Whisper-shaped outputs."""

from __future__ import annotations

import pytest

from mmserve.engines.common.transcripts import compression_ratio
from mmserve.engines.whisper.segments import WindowOutput, split_window

# Real Whisper's layout: <|endoftext|> 50257, timestamps from 50364 (<|0.00|>) in 0.02 s steps.
EOT, TS = 50257, 50364
VOCAB = {1: " The", 2: " weather", 3: " is", 4: " nice", 5: ".", 6: " And", 7: " the", 8: " sun", 9: " shines", 10: "!"}


def ts(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def window(tokens: list[int], *, times: list[float] | None = None, offset: float = 0.0, duration: float = 10.0):
    return WindowOutput(
        tokens=tokens,
        logprobs=[-0.5] * len(tokens),
        offset=offset,
        duration=duration,
        token_times=times,
        no_speech_prob=0.01,
        seek=int(offset * 100),
    )


def split(out: WindowOutput, **kw: object):
    return split_window(out, timestamp_begin=TS, eot=EOT, decode=decode, **kw)  # type: ignore[arg-type]


def test_paired_timestamps_make_segments() -> None:
    tokens = [ts(0), 1, 2, 3, 4, 5, ts(2.4), ts(2.6), 6, 7, 8, 9, 10, ts(4.0), EOT]
    segs = split(window(tokens))
    assert [(s.start, s.end, s.text) for s in segs] == [
        (0.0, 2.4, "The weather is nice."),
        (2.6, 4.0, "And the sun shines!"),
    ]
    assert segs[0].tokens == [ts(0), 1, 2, 3, 4, 5, ts(2.4)] and segs[1].id == 1
    assert segs[0].avg_logprob == pytest.approx(-0.5) and segs[0].no_speech_prob == 0.01


def test_offset_seek_and_first_id_place_a_later_window() -> None:
    segs = split(window([ts(1.0), 1, 2, ts(2.0), EOT], offset=30.0), first_id=7)
    assert (segs[0].id, segs[0].start, segs[0].end, segs[0].seek) == (7, 31.0, 32.0, 3000)


def test_a_window_without_timestamps_is_one_segment() -> None:
    segs = split(window([1, 2, 3, 4, 5, EOT], duration=3.5))
    assert [(s.start, s.end, s.text) for s in segs] == [(0.0, 3.5, "The weather is nice.")]


def test_text_after_the_last_timestamp_runs_to_the_end_of_the_window() -> None:
    segs = split(window([ts(0.5), 1, 2, ts(1.5), ts(1.5), 6, 7, 8], duration=4.0))  # cut off: no EOT
    assert [(s.start, s.end) for s in segs] == [(0.5, 1.5), (1.5, 4.0)]


def test_timestamps_beyond_the_audio_are_clamped_to_it() -> None:
    segs = split(window([ts(0.0), 1, ts(29.0), EOT], duration=3.0))
    assert (segs[0].start, segs[0].end) == (0.0, 3.0)


def test_empty_segments_and_tokens_after_eot_are_dropped() -> None:
    segs = split(window([ts(0.0), ts(1.0), ts(1.0), 1, 2, ts(2.0), EOT, 3, 4]))
    assert [(s.start, s.end, s.text) for s in segs] == [(1.0, 2.0, "The weather")]


def test_recorded_tiny_model_output() -> None:
    """A window the seeded demo Whisper really produced (3 s of noise, 40 steps, no EOT)."""
    ts_begin, eot = 608, 500
    tokens = [643, 437, 2108, 2108] + [341] * 36
    times = [0.0] * 23 + [0.08, 2.42, 2.42] + [2.64] * 9 + [2.66, 2.66] + [2.98] * 3
    out = WindowOutput(tokens, [-5.3] * 40, 0.0, 3.0, token_times=times)
    pieces = {437: "ousand", 341: "Wh"}
    segs = split_window(
        out, timestamp_begin=ts_begin, eot=eot, decode=lambda ids: "".join(pieces[i] for i in ids), words=True
    )
    assert [(s.start, s.end, s.text[:8]) for s in segs] == [(0.7, 3.0, "ousand"), (3.0, 3.0, "WhWhWhWh")]
    assert [(w.word, w.start, w.end) for w in segs[0].words] == [("ousand", 0.7, 0.7)]
    assert segs[1].compression_ratio > 2.4  # Whisper's repetition signal


def test_words_follow_token_times_clamped_into_their_segment() -> None:
    tokens = [ts(0), 1, 2, 3, 4, 5, ts(2.4), ts(2.6), 6, 7, 8, 9, 10, ts(4.0), EOT]
    times = [0.0, 0.1, 0.5, 1.1, 1.3, 1.9, 2.0, 2.5, 2.7, 3.0, 3.2, 3.6, 3.9, 5.0, 5.0]
    segs = split(window(tokens, times=times), words=True)
    assert [(w.word, w.start, w.end) for w in segs[0].words] == [
        ("The", 0.1, 0.5),
        ("weather", 0.5, 1.1),
        ("is", 1.1, 1.3),
        ("nice.", 1.3, 2.0),  # punctuation sticks to its word
    ]
    words = segs[1].words
    assert [w.word for w in words] == ["And", "the", "sun", "shines!"]
    assert words[0].start == 2.7 and words[-1].end == 4.0  # 5.0 clamped to the segment's end


def test_word_times_never_go_backwards() -> None:
    tokens = [ts(0), 1, 2, 3, ts(3.0), EOT]
    times = [0.0, 1.0, 0.2, 0.4, 2.0, 2.0]  # alignment jumped back
    words = split(window(tokens, times=times), words=True)[0].words
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert all(w.start <= w.end for w in words)


def test_without_alignment_words_share_the_segment_evenly() -> None:
    words = split(window([ts(0), 1, 2, 3, 4, ts(4.0), EOT]), words=True)[0].words
    assert [(w.start, w.end) for w in words] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]


def test_compression_ratio() -> None:
    assert compression_ratio("") == 0.0
    assert compression_ratio("la " * 100) > 2.4 > compression_ratio("The weather is nice today.")
