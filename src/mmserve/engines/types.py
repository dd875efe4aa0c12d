"""Plain typed objects that cross the engine boundary (no FastAPI, no pydantic API models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image

    from mmserve.chatformat.grammar import OutputConstraint

# ---------------------------------------------------------------- chat


@dataclass
class ChatPart:
    type: Literal["text", "image", "audio"]
    text: str = ""
    image: Image | None = None
    video: int | None = None  # a frame sampled from the request's video number ``video`` (None: an image)
    audio: Any = None  # numpy.ndarray[float32], mono, at ``sample_rate``
    sample_rate: int = 16000


@dataclass
class ChatMessage:
    role: str  # system | user | assistant | tool (developer is mapped to system)
    content: str | list[ChatPart]
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI shape: function.arguments is a JSON string
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    @property
    def images(self) -> list[Image]:
        if isinstance(self.content, str):
            return []
        return [p.image for p in self.content if p.type == "image" and p.image is not None]


@dataclass
class SamplingParams:
    max_tokens: int | None = None  # None: the card's default, clipped to the context
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool = False  # return each output token's log-probability
    top_logprobs: int = 0  # and the k most likely alternatives at each position (0-20)
    ignore_eos: bool = False  # keep generating past end-of-sequence, up to max_tokens (vLLM's extension)


@dataclass
class TopLogprob:
    token: str
    logprob: float
    bytes: list[int] | None


@dataclass
class TokenLogprob:
    """One output token's log-probability under the distribution it was sampled from (OpenAI's shape)."""

    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass
class RawPrompt:
    """A prompt continued as given (legacy completions): text, or token ids of the model's tokenizer."""

    value: str | list[int]
    param: str = "prompt"  # names it in errors (``prompt[2]``)


@dataclass
class ChatInput:
    messages: list[ChatMessage]
    params: SamplingParams = field(default_factory=SamplingParams)
    # Extensions for the reasoning / tools / structured-output work.
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    reasoning: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The answer's shape, enforced while decoding (response_format, tool_choice required/named).
    constraint: OutputConstraint | None = None
    # Legacy completions: the prompt as given, no chat template (messages is then empty).
    prompt: RawPrompt | None = None
    # Whether the client reads the deltas as they come (a stream). False: it waits for the whole
    # answer, so a remote replica may send the deltas in fewer, larger pieces (runtime/actor.py).
    streamed: bool = True


@dataclass
class ChatDelta:
    """One streamed step. The last delta has ``finish_reason`` set ("stop" or "length")."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    prompt_text: str | None = None  # first delta: the rendered prompt, when the engine renders one
    image_tokens: int = 0  # first delta: how many of the prompt tokens the images expanded into (frames included)
    video_tokens: int = 0  # first delta: how many of those image tokens are video frames
    audio_tokens: int = 0  # first delta: how many of the prompt tokens the audio clips expanded into
    # With SamplingParams.logprobs: the entries of the tokens generated since the previous delta
    # (text held back, e.g. a partial stop string, comes later; its tokens' entries come now).
    logprobs: list[TokenLogprob] | None = None


# ---------------------------------------------------------------- images


@dataclass
class ImageGenInput:
    prompt: str
    n: int = 1
    width: int = 512
    height: int = 512
    steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    images: list[Image] = field(default_factory=list)  # edits: init image(s)
    mask: Image | None = None  # mode "L", same size as images[0]: white = repaint, black = keep
    strength: float | None = None
    quality: str | None = None  # low | medium | high; None: the engine's default (steps, when set, win)
    transparent_background: bool = False  # background "transparent": RGBA output (engines that support it)
    output_format: str | None = None  # the file format the client asked for (png | jpeg | webp)
    output_compression: int | None = None  # its compression level (0-100), when asked
    partial_images: int = 0  # previews to send while generating (streaming), decoded from intermediate latents


@dataclass
class ImageGenOutput:
    images: list[Image]
    prompt_tokens: int = 0
    steps: int = 0  # denoising steps the model ran
    quality: str | None = None  # the quality level those steps came from (None: explicit steps)
    seed: int | None = None  # image i was generated from seed + i
    output_tokens: int = 0  # tokens the model billed for its output (providers that meter images in tokens)
    # Images already encoded in ``request.output_format`` (a provider's files, checked): sent as they are
    # instead of encoding ``images`` again. ``images`` may then be empty.
    encoded: list[bytes] | None = None

    @property
    def count(self) -> int:
        """How many images were made (``encoded`` ones or decoded ones)."""
        return len(self.encoded) if self.encoded is not None else len(self.images)


# ---------------------------------------------------------------- speech


@dataclass
class SpeechInput:
    text: str
    voice: str
    speed: float = 1.0
    instructions: str | None = None


@dataclass
class AudioChunk:
    """Mono float32 PCM samples in [-1, 1] at ``sample_rate``."""

    samples: Any  # numpy.ndarray[float32]
    sample_rate: int
    # Tokens the model billed (a provider's reported usage), on the chunk that reports them (often the last).
    input_tokens: int = 0
    output_tokens: int = 0


# ---------------------------------------------------------------- transcription


@dataclass
class TranscriptionInput:
    audio: Any  # numpy.ndarray[float32], mono, 16 kHz
    sample_rate: int = 16000
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    task: Literal["transcribe", "translate"] = "transcribe"
    word_timestamps: bool = False


@dataclass
class Word:
    word: str
    start: float
    end: float


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    words: list[Word] = field(default_factory=list)
    seek: int = 0  # offset of the decoding window, in 10 ms feature frames (OpenAI's verbose_json)
    temperature: float = 0.0
    compression_ratio: float = 0.0


@dataclass
class Transcript:
    text: str
    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)
    # What the model billed, when it reports it (a provider's usage): seconds heard, or tokens.
    billed_seconds: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0


# ---------------------------------------------------------------- video


@dataclass
class VideoGenInput:
    prompt: str
    width: int
    height: int
    num_frames: int
    fps: int
    steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    image: Image | None = None  # image-to-video reference
    # What the engine saved with the job on an earlier run (a provider's job id): resume rather than start over.
    resume: dict[str, Any] = field(default_factory=dict)


@dataclass
class VideoGenOutput:
    frames: Any  # numpy.ndarray[uint8] of shape (T, H, W, 3)
    fps: int


# ---------------------------------------------------------------- embeddings


@dataclass
class EmbeddingItem:
    """One input to embed: exactly one of text, token ids (already tokenized text) or an image."""

    text: str | None = None
    tokens: list[int] | None = None
    image: Image | None = None
    param: str = "input"  # names this input in errors (``input[3]``)


@dataclass
class EmbeddingInput:
    items: list[EmbeddingItem]
    dimensions: int | None = None  # cut each vector to its first N values and renormalise (card permitting)


@dataclass
class EmbeddingOutput:
    vectors: Any  # numpy.ndarray[float32] of shape (len(items), dimensions), in input order
    text_tokens: int = 0  # tokens of the text inputs (what per-1M-token prices bill)
    images: int = 0  # images embedded (what per-image prices bill)


# ---------------------------------------------------------------- serving statistics


@dataclass
class ServingStats:
    """What an engine that runs its own server reports about it (vLLM's /metrics), per replica."""

    waiting: float = 0.0  # requests queued inside the engine
    running: float = 0.0  # requests being generated
    ttft_buckets: list[tuple[float, float]] = field(default_factory=list)  # (upper bound s, cumulative count)
    ttft_sum: float = 0.0  # seconds, over every first token so far
    ttft_count: float = 0.0
