"""A small ctypes binding of libespeak-ng's synthesis API (speak_lib.h), as shipped by ``espeakng-loader``.

Why ctypes, by hand: ``espeakng-loader`` (PyPI) ships the shared library and its data but
no command-line tool and no Python API, and the maintained Python packages around espeak-ng
either shell out to the ``espeak-ng`` program (which pip cannot install) or, like
``phonemizer``, bind only the text-to-phoneme half. Synthesis with a streaming callback is
five C functions, bound here with their exact signatures.

libespeak-ng keeps global state (one voice, one callback per process) and is not
thread-safe: every call goes through :data:`LOCK`, and a synthesis holds it until done.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmserve.errors import EngineUnavailableError

LOCK = threading.Lock()

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_RATE = 1
EE_OK = 0
MIN_RATE = 80  # words per minute; the library clamps slower rates to this
MAX_RATE = 1000  # beyond 450 the library speeds up with its built-in Sonic

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # priority byte + language, repeated; ends with a 0 priority
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class VoiceInfo:
    name: str  # "English (America)"
    identifier: str  # "gmw/en-US"
    languages: tuple[str, ...]  # ("en-us", "en")

    @property
    def short(self) -> str:
        """The name espeak-ng's own tools use: the identifier's last part, lower-case ("en-us")."""
        return self.identifier.rsplit("/", 1)[-1].lower()


# A chunk sink: gets int16 samples, returns False to stop the synthesis.
ChunkSink = Callable[[np.ndarray], bool]


class Espeak:
    """The process-wide library handle. Use :func:`library`."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise EngineUnavailableError(
                "The espeak-ng engine needs the 'espeakng-loader' package: pip install 'mmserve[speech]'."
            ) from None
        self.data_path = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        self._lib = lib
        # 100 ms per callback: small enough for a fast first byte, large enough to be cheap.
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 100, str(self.data_path).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EngineUnavailableError(f"libespeak-ng failed to initialise with its data at {self.data_path}.")
        self.sample_rate = rate
        self._sink: ChunkSink | None = None
        self._callback = _CALLBACK(self._on_audio)  # kept referenced: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.voices = self._list_voices()
        vdir = self.data_path / "voices" / "!v"
        self.variants = tuple(sorted(p.name for p in vdir.iterdir() if p.is_file())) if vdir.is_dir() else ()

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
        sink = self._sink
        if sink is None:
            return 1
        if wav and n > 0:
            return 0 if sink(np.ctypeslib.as_array(wav, shape=(n,)).copy()) else 1
        return 0

    def _list_voices(self) -> tuple[VoiceInfo, ...]:
        out = []
        arr = self._lib.espeak_ListVoices(None)
        i = 0
        while arr[i]:
            v = arr[i].contents
            out.append(VoiceInfo(_str(v.name), _str(v.identifier), _languages(v.languages)))
            i += 1
        return tuple(out)

    def set_voice(self, spec: str) -> bool:
        """Select a voice ("en-us", "en-us+klatt", ...). Call with :data:`LOCK` held."""
        return bool(self._lib.espeak_SetVoiceByName(spec.encode()) == EE_OK)

    def synthesize(self, text: str, voice: str, rate_wpm: int, sink: ChunkSink) -> None:
        """Speak ``text`` synchronously; ``sink`` gets int16 chunks at :attr:`sample_rate` as they come."""
        data = text.encode("utf-8") + b"\0"
        with LOCK:
            if not self.set_voice(voice):
                raise RuntimeError(f"espeak-ng could not select voice {voice!r}")
            self._lib.espeak_SetParameter(_RATE, max(MIN_RATE, min(MAX_RATE, rate_wpm)), 0)
            self._sink = sink
            try:
                buf = ctypes.create_string_buffer(data, len(data))
                err = self._lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            finally:
                self._sink = None
        if err != EE_OK:
            raise RuntimeError(f"espeak_Synth failed with error {err}")


def _str(p: bytes | None) -> str:
    return p.decode("utf-8", "replace") if p else ""


def _languages(ptr: int | None) -> tuple[str, ...]:
    if not ptr:
        return ()
    out = []
    offset = 0
    while True:
        priority = ctypes.c_ubyte.from_address(ptr + offset).value
        if priority == 0:
            break
        name = ctypes.string_at(ptr + offset + 1)
        out.append(name.decode("utf-8", "replace").lower())
        offset += len(name) + 2
    return tuple(out)


_instance: Espeak | None = None
_init_lock = threading.Lock()


def library() -> Espeak:
    """The library, initialised once per process."""
    global _instance
    with _init_lock:
        if _instance is None:
            _instance = Espeak()
        return _instance
