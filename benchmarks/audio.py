"""Speech engines on CPU: real-time factor of each engine, and time to first audio byte over HTTP.

    python benchmarks/audio.py [--repeats 3] [--seconds 20]

Real-time factor (RTF) here is seconds of audio per second of compute (higher is faster;
1.0 is real time), measured on the engines directly: espeak-ng and the tiny VITS synthesising
a paragraph, PocketSphinx and the tiny Whisper transcribing ``--seconds`` of espeak-ng speech.
The tiny neural models have random weights and ~0.1 M parameters, so their figures show the
pipeline's overhead, not what a real checkpoint costs.

Then it starts `mmserve serve` with those four models and measures, per response format,
the time to the first audio byte of ``POST /v1/audio/speech`` against the time to the whole
response (streaming means the first is a small fraction of the second for long inputs).
Writes benchmarks/results/audio.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from _common import mmserve, summarize, write_result
from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.espeak.engine import EspeakEngine
from mmserve.engines.pocketsphinx_asr import PocketsphinxEngine
from mmserve.engines.transformers_tts import TransformersTTSEngine
from mmserve.engines.types import SpeechInput, TranscriptionInput
from mmserve.engines.whisper.engine import WhisperEngine
from mmserve.media.audio.dsp import Resampler

PARAGRAPH = (
    "The weather is nice today and the sun is shining. One two three four five six seven eight nine ten. "
    "Please call me tomorrow morning, and we will talk about the plan for next week. "
) * 3
CATALOG = {
    "models": [
        {"id": "demo-tts", "task": "speech", "engine": "espeak-ng", "deployment": {"mode": "dedicated"}},
        {
            "id": "tiny-vits",
            "task": "speech",
            "engine": "transformers-tts",
            "source": "demo:vits",
            "deployment": {"mode": "dedicated"},
        },
    ]
}


async def _synth_rtf(engine: Any, repeats: int) -> dict[str, float]:
    rtfs, firsts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        first = None
        samples, rate = 0, 1
        async for chunk in engine.synthesize(SpeechInput(PARAGRAPH, "alloy")):
            first = first or time.perf_counter() - start
            samples, rate = samples + len(chunk.samples), chunk.sample_rate
        elapsed = time.perf_counter() - start
        rtfs.append(samples / rate / elapsed)
        firsts.append(first or elapsed)
    return {"audio_s": samples / rate, "rtf": statistics.median(rtfs), "first_chunk_s": statistics.median(firsts)}


async def _asr_rtf(engine: Any, audio: np.ndarray, repeats: int, **kw: Any) -> dict[str, float]:
    rtfs = []
    text = ""
    for _ in range(repeats):
        start = time.perf_counter()
        t = await engine.transcribe(TranscriptionInput(audio, **kw))
        rtfs.append(len(audio) / 16000 / (time.perf_counter() - start))
        text = t.text
    return {"audio_s": len(audio) / 16000, "rtf": statistics.median(rtfs), "words": len(text.split())}


async def engine_rtfs(models_dir: Path, repeats: int, seconds: float) -> dict[str, Any]:
    def card(task: str, engine: str, **kw: Any) -> ModelCard:
        return ModelCard(id=engine, task=task, engine=engine, **kw)  # type: ignore[arg-type]

    espeak = EspeakEngine(card("speech", "espeak-ng"), source=None, device="cpu")
    vits = TransformersTTSEngine(
        card("speech", "transformers-tts"), source=build_demo_model("vits", models_dir), device="cpu"
    )
    sphinx = PocketsphinxEngine(card("transcription", "pocketsphinx"), source=None, device="cpu")
    whisper = WhisperEngine(
        card("transcription", "whisper"), source=build_demo_model("whisper", models_dir), device="cpu"
    )
    for e in (espeak, vits, sphinx, whisper):
        e.load()
    # Real speech for the recognisers: espeak-ng's, resampled to 16 kHz, ``seconds`` long.
    chunks = [c async for c in espeak.synthesize(SpeechInput(PARAGRAPH * 4, "sage"))]
    r = Resampler(chunks[0].sample_rate, 16000)
    speech = np.concatenate([r.push(np.concatenate([c.samples for c in chunks])), r.flush()])[: int(seconds * 16000)]
    out = {
        "espeak-ng": await _synth_rtf(espeak, repeats),
        "transformers-tts (tiny VITS)": await _synth_rtf(vits, repeats),
        "pocketsphinx": await _asr_rtf(sphinx, speech, repeats),
        # the random model runs to max_new_tokens (224) per 30 s window: a worst case for decoding
        "whisper (tiny, random weights)": await _asr_rtf(whisper, speech, repeats, language="en"),
        "whisper (tiny) + word timestamps": await _asr_rtf(
            whisper, speech, repeats, language="en", word_timestamps=True
        ),
    }
    for e in (espeak, vits, sphinx, whisper):
        e.unload()
    return out


async def first_byte(url: str, model: str, fmt: str, text: str, repeats: int) -> dict[str, Any]:
    firsts, totals, sizes = [], [], []
    body = {"model": model, "input": text, "voice": "alloy", "response_format": fmt}
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(repeats):
            start = time.perf_counter()
            first = None
            size = 0
            async with client.stream("POST", f"{url}/v1/audio/speech", json=body) as r:
                r.raise_for_status()
                async for chunk in r.aiter_raw():
                    first = first or time.perf_counter() - start
                    size += len(chunk)
            totals.append(time.perf_counter() - start)
            firsts.append(first or totals[-1])
            sizes.append(size)
    ttfb, total = summarize(firsts), summarize(totals)
    return {
        "ttfb_p50_s": ttfb["p50_s"],
        "total_p50_s": total["p50_s"],
        "ttfb_over_total": ttfb["p50_s"] / total["p50_s"],
        "bytes": sizes[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio transcribed per ASR run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        rtf = asyncio.run(engine_rtfs(data_dir / "models", args.repeats, args.seconds))
        config = data_dir / "catalog.yaml"
        config.write_text(yaml.safe_dump(CATALOG))
        ttfb: dict[str, Any] = {}
        with mmserve(data_dir, "--config", str(config), wait_for=["demo-tts", "tiny-vits"]) as url:
            for model in ("demo-tts", "tiny-vits"):
                for fmt in ("mp3", "opus", "aac", "wav", "pcm", "flac"):
                    ttfb[f"{model} {fmt}"] = asyncio.run(first_byte(url, model, fmt, PARAGRAPH, args.repeats))
    write_result(
        "audio",
        {
            "paragraph_chars": len(PARAGRAPH),
            "real_time_factor": rtf,
            "speech_first_byte": ttfb,
            "notes": "rtf = seconds of audio per second of compute (higher is faster); "
            "ttfb_over_total < 1 means audio was sent while the rest was still being made "
            "(flac is sent complete by design).",
        },
    )


if __name__ == "__main__":
    main()
