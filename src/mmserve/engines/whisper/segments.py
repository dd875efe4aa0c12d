"""Turn one decoded Whisper window (token ids, per-token log-probs and times) into segments and words.

Pure functions on plain lists, so they are tested on recorded decoder outputs. The rules are
Whisper's own (as in openai/whisper and transformers' long-form decoding):

- timestamp tokens are ``timestamp_begin + k`` for time ``k * 0.02`` s within the window;
- a segment is text between a start timestamp and an end timestamp; two consecutive
  timestamps close one segment and open the next; a window with no timestamps is one
  segment spanning the window; text after the last timestamp runs to the window's end;
- words start at tokens whose text begins with a space (punctuation sticks to its word);
  a word lasts from its first token's time to the time of the token after its last one
  (token times come from cross-attention alignment), clamped into its segment and kept
  non-decreasing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mmserve.engines.common.transcripts import compression_ratio
from mmserve.engines.types import Segment, Word

TIME_PRECISION = 0.02


@dataclass
class WindowOutput:
    """What the decoder produced for one window of at most 30 s (generated tokens only)."""

    tokens: list[int]
    logprobs: list[float]  # log-probability of each token under the (processed) distribution
    offset: float  # window start in the audio, seconds
    duration: float  # seconds of real audio in the window
    token_times: list[float] | None = None  # per token, seconds from the window start
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    seek: int = 0  # window start in 10 ms feature frames
    meta: dict[str, object] = field(default_factory=dict)


def split_window(
    out: WindowOutput,
    *,
    timestamp_begin: int,
    eot: int,
    decode: Callable[[list[int]], str],
    first_id: int = 0,
    words: bool = False,
) -> list[Segment]:
    """Segments (with words if asked) of one window, times in seconds from the start of the audio."""
    tokens = list(out.tokens)
    if eot in tokens:
        tokens = tokens[: tokens.index(eot)]
    spans = _spans(tokens, timestamp_begin, out.duration)
    segments: list[Segment] = []
    for start_t, end_t, lo, hi in spans:
        text_ids = [t for t in tokens[lo:hi] if t < timestamp_begin]
        text = decode(text_ids).strip()
        if not text:
            continue
        start = round(out.offset + min(start_t, out.duration), 2)
        end = round(out.offset + min(max(end_t, start_t), out.duration), 2)
        lps = out.logprobs[lo:hi]
        seg = Segment(
            id=first_id + len(segments),
            start=start,
            end=max(end, start),
            text=text,
            tokens=tokens[lo:hi],
            avg_logprob=sum(lps) / len(lps) if lps else 0.0,
            no_speech_prob=out.no_speech_prob,
            seek=out.seek,
            temperature=out.temperature,
            compression_ratio=compression_ratio(text),
        )
        if words:
            seg.words = _words(tokens, out, lo, hi, timestamp_begin, decode, seg)
        segments.append(seg)
    return segments


def _spans(tokens: list[int], ts_begin: int, duration: float) -> list[tuple[float, float, int, int]]:
    """(start s, end s, first index, end index) of each segment; indices cover text and timestamps."""

    def time(tok: int) -> float:
        return (tok - ts_begin) * TIME_PRECISION

    is_ts = [t >= ts_begin for t in tokens]
    if not any(is_ts):
        return [(0.0, duration, 0, len(tokens))] if tokens else []
    spans = []
    start_t, start_i = 0.0, 0
    i = 0
    n = len(tokens)
    while i < n:
        if not is_ts[i]:
            i += 1
            continue
        has_text = any(not x for x in is_ts[start_i:i])
        if has_text:  # a timestamp after text closes the segment
            spans.append((start_t, time(tokens[i]), start_i, i + 1))
            start_i = i + 1
            if i + 1 < n and is_ts[i + 1]:  # ...and a second one opens the next
                start_t, start_i = time(tokens[i + 1]), i + 1
                i += 1
            else:
                start_t = time(tokens[i])
        else:  # a timestamp with no text before it opens a segment
            start_t, start_i = time(tokens[i]), i
        i += 1
    if any(not x for x in is_ts[start_i:]):  # text after the last timestamp runs to the end of the window
        spans.append((start_t, duration, start_i, n))
    return spans


def _words(
    tokens: list[int],
    out: WindowOutput,
    lo: int,
    hi: int,
    ts_begin: int,
    decode: Callable[[list[int]], str],
    seg: Segment,
) -> list[Word]:
    groups: list[list[int]] = []  # token indices per word
    for i in range(lo, hi):
        if tokens[i] >= ts_begin:
            continue
        piece = decode([tokens[i]])
        if not groups or (piece[:1].isspace() and piece.strip()):
            groups.append([i])
        else:
            groups[-1].append(i)
    words: list[Word] = []
    last = seg.start
    times = out.token_times
    for idx in groups:
        text = decode([tokens[i] for i in idx]).strip()
        if not text:
            continue
        if times is not None and idx[-1] + 1 < len(times):
            start = out.offset + times[idx[0]]
            end = out.offset + times[idx[-1] + 1]
        else:  # no alignment: spread the words evenly over the segment
            k = len(words)
            span = (seg.end - seg.start) / max(1, len(groups))
            start, end = seg.start + k * span, seg.start + (k + 1) * span
        start = min(max(start, last, seg.start), seg.end)
        end = min(max(end, start), seg.end)
        words.append(Word(text, round(start, 2), round(end, 2)))
        last = start
    return words
