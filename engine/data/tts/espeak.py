"""eSpeak NG through its C library, so phone times come from the synthesiser itself, not an aligner.

The library is driven with ctypes (no headers or Python binding needed). Phoneme events carry the
index of the output sample at which each phoneme starts; we verified against the waveform that
these mark acoustic onsets (see `_extend_stop_closures` for the one systematic exception).

`espeak_Initialize` may run once per process -- a second call crashes the library -- so it lives
behind a module lock. We ask for AUDIO_OUTPUT_SYNCHRONOUS rather than AUDIO_OUTPUT_RETRIEVAL:
both hand samples and events to the same callback, but RETRIEVAL runs synthesis on a library
thread that does not survive `fork()`, which the corpus workers rely on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
import threading
import zlib

import numpy as np

from engine.data.record import Phone
from engine.data.tts.espeak_phones import is_marker, map_espeak_phone
from engine.data.tts.voice import (
    SAMPLE_RATE,
    TTSError,
    TTSUnavailableError,
    Utterance,
    Voice,
    check_prosody,
    check_text,
    tile_phones,
    to_model_audio,
)
from engine.phonemes import SILENCE

ENGINE = "espeak"

# Base voices per language (espeak-ng voice names) and the variants that sound like people.
# "whisper"/"whisperf" have no voicing, so lips move over noise; they are left out on purpose.
ESPEAK_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan"),
    "es": ("es", "es-419"),
    "de": ("de",),
    "fr": ("fr", "fr-be", "fr-ch"),
    "it": ("it",),
}
ESPEAK_VARIANTS: tuple[str, ...] = (
    *(f"m{i}" for i in range(1, 9)),
    *(f"f{i}" for i in range(1, 6)),
    "croak", "klatt", "klatt2", "klatt3", "klatt4", "Alex", "Alicia", "Andrea", "Andy", "Annie",
    "Denis", "Gene", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Storm", "Tweaky",
    "adam", "anika", "announcer", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb",
    "david", "ed", "edward", "grandma", "grandpa", "gustave", "iven", "john", "linda", "max",
    "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro",
    "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip

# speak_lib.h (espeak-ng 1.51) constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0

_STOPS = frozenset({"P", "B", "T", "D", "K", "G", "CH", "JH"})
_CLOSURE_MAX_S = 0.12  # longest silent run we attribute to a stop's closure
_CLOSURE_FLOOR = 0.03  # "silent" = frame RMS under 3 % of the utterance's loud frames


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index into the text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds (rounded): we use `sample` instead
        ("sample", ctypes.c_int),  # output sample index at the library's rate
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # union: word number, or the phoneme mnemonic (not 0-terminated at 8)
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Collector:
    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, bytes]] = []  # type, sample, text_pos, length, id


class _Library:
    """The process-wide espeak-ng instance. All calls go through `lock`: the library is not reentrant."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise TTSUnavailableError(
                f"eSpeak NG library not found ({exc}); install it with `apt-get install espeak-ng`"
            ) from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        # eSpeak draws noise and jitter from libc's rand(); reseeding it before each call makes a
        # (text, voice) pair sound the same whatever was synthesised before it in this process.
        self.libc = ctypes.CDLL(None)
        self.libc.srand.argtypes = [ctypes.c_uint]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise TTSUnavailableError(
                "eSpeak NG failed to initialise (its data files are missing?); "
                "reinstall it with `apt-get install --reinstall espeak-ng-data`"
            )
        self.lib = lib
        self.sample_rate = int(rate)
        self.lock = threading.Lock()
        self.collector: _Collector | None = None
        self.callback = _Callback(self._on_synth)  # kept referenced: the library holds a raw pointer
        lib.espeak_SetSynthCallback(self.callback)

    def _on_synth(self, wav, n_samples, events) -> int:
        sink = self.collector
        if sink is None:
            return 0
        if n_samples > 0:
            sink.chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type in (_EVENT_WORD, _EVENT_PHONEME):
                sink.events.append((ev.type, ev.sample, ev.text_position, ev.length, bytes(ev.id)))
            i += 1
        return 0

    def run(self, text: str, voice_name: str, rate: int, pitch: int) -> tuple[np.ndarray, list]:
        """Synthesise in a forked child when the platform allows it.

        eSpeak keeps waveform state (glottal phase, pitch flutter) from one utterance to the next,
        which moves phone boundaries by a pitch period and changes the samples. The child starts
        from this process's untouched state, so the same (text, voice) always gives the same
        output, whatever was synthesised before -- the corpus depends on that for determinism.
        """
        with self.lock:
            if not hasattr(os, "fork"):
                return self._synthesise(text, voice_name, rate, pitch)
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: synthesise, send, exit without running the parent's cleanup
                status = 0
                try:
                    os.close(read_fd)
                    try:
                        result: object = self._synthesise(text, voice_name, rate, pitch)
                    except Exception as exc:  # noqa: BLE001 -- re-raised in the parent
                        result = exc
                    with os.fdopen(write_fd, "wb") as pipe:
                        pickle.dump(result, pipe, protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException:  # noqa: BLE001
                    status = 1
                finally:
                    os._exit(status)
            os.close(write_fd)
            with os.fdopen(read_fd, "rb") as pipe:
                payload = pipe.read()
            _, status = os.waitpid(pid, 0)
        if status != 0 or not payload:
            raise TTSError(f"eSpeak NG crashed while synthesising {text[:40]!r} (exit status {status})")
        received = pickle.loads(payload)
        if isinstance(received, Exception):
            raise received
        audio, events = received
        return audio, events

    def _synthesise(self, text: str, voice_name: str, rate: int, pitch: int) -> tuple[np.ndarray, list]:
        if self.lib.espeak_SetVoiceByName(voice_name.encode()) != _EE_OK:
            raise ValueError(f"eSpeak NG has no voice {voice_name!r}; see list_voices('espeak')")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        data = text.encode("utf-8")
        self.libc.srand(zlib.crc32(data + voice_name.encode()))
        sink = _Collector()
        self.collector = sink
        try:
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
        finally:
            self.collector = None
        if err != _EE_OK:
            raise TTSError(f"eSpeak NG failed to synthesise the text (error {err})")
        audio = np.concatenate(sink.chunks) if sink.chunks else np.zeros(0, np.int16)
        return audio, sink.events


_LIBRARY: _Library | None = None
_LIBRARY_PID: int | None = None
_INIT_LOCK = threading.Lock()


def _library() -> _Library:
    """The one espeak instance of this process (a forked child reuses its parent's, which is safe in
    synchronous mode: there is no library thread to lose)."""
    global _LIBRARY, _LIBRARY_PID
    with _INIT_LOCK:
        if _LIBRARY is None:
            _LIBRARY = _Library()
            _LIBRARY_PID = os.getpid()
        elif _LIBRARY_PID != os.getpid():
            _LIBRARY.lock = threading.Lock()  # a lock held by a parent thread at fork time stays held
            _LIBRARY_PID = os.getpid()
        return _LIBRARY


def is_available() -> bool:
    try:
        _library()
    except TTSUnavailableError:
        return False
    return True


def list_espeak_voices(language: str | None = None) -> list[Voice]:
    langs = [language] if language else list(ESPEAK_VOICES)
    voices = []
    for lang in langs:
        for name in ESPEAK_VOICES.get(lang, ()):
            voices.append(Voice(ENGINE, name, lang))
            voices.extend(Voice(ENGINE, name, lang, variant=v) for v in ESPEAK_VARIANTS)
    return voices


def _check_voice(voice: Voice) -> None:
    if voice.language not in ESPEAK_VOICES:
        raise ValueError(
            f"eSpeak backend does not support language {voice.language!r}; "
            f"supported: {', '.join(ESPEAK_VOICES)}"
        )
    if voice.name not in ESPEAK_VOICES[voice.language]:
        raise ValueError(
            f"eSpeak voice {voice.name!r} is not a {voice.language!r} voice; "
            f"choose one of: {', '.join(ESPEAK_VOICES[voice.language])}"
        )
    if voice.variant is not None and voice.variant not in ESPEAK_VARIANTS:
        raise ValueError(
            f"unknown eSpeak variant {voice.variant!r}; see engine.data.tts.espeak.ESPEAK_VARIANTS"
        )
    check_prosody(voice)


def synthesize_espeak(text: str, voice: Voice) -> Utterance:
    cleaned = check_text(text)
    _check_voice(voice)
    lib = _library()
    name = f"{voice.name}+{voice.variant}" if voice.variant else voice.name
    raw, events = lib.run(cleaned, name, voice.rate, voice.pitch)
    if len(raw) == 0:
        raise TTSError(f"eSpeak NG produced no audio for {text[:40]!r}")
    sr = lib.sample_rate
    n = len(raw)
    phone_events = [
        (s, symbol)
        for t, s, _, _, ident in events
        if t == _EVENT_PHONEME
        and not is_marker(symbol := ident.split(b"\0", 1)[0].decode("utf-8", "replace"))
    ]
    symbols: list[str] = []
    segments: list[tuple[str, float, float]] = []
    for k, (sample, symbol) in enumerate(phone_events):
        end_sample = phone_events[k + 1][0] if k + 1 < len(phone_events) else n
        if end_sample <= sample:
            continue  # markers without duration (voice switches, zero-length pauses)
        symbols.append(symbol)
        for phone, share in map_espeak_phone(symbol, voice.language):
            a = sample + (end_sample - sample) * share[0]
            b = sample + (end_sample - sample) * share[1]
            segments.append((phone, a / sr, b / sr))
    audio = to_model_audio(raw, sr)
    duration = len(audio) / SAMPLE_RATE
    segments = _extend_stop_closures(segments, raw.astype(np.float32), sr)
    phones = tile_phones(segments, duration)
    words = _words(cleaned, events, phones, sr, duration)
    return Utterance(audio, SAMPLE_RATE, phones, words, cleaned, voice, symbols)


def _frame_rms(audio: np.ndarray, sr: int, hop_s: float = 0.005) -> tuple[np.ndarray, int]:
    hop = max(1, int(sr * hop_s))
    n = len(audio) // hop
    frames = audio[: n * hop].reshape(n, hop)
    return np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)), hop


def _extend_stop_closures(
    segments: list[tuple[str, float, float]], audio: np.ndarray, sr: int
) -> list[tuple[str, float, float]]:
    """eSpeak puts a stop's phoneme event at its release; the closure (silence before the burst) is
    emitted inside the previous phoneme. Lips and tongue close during that silence, so move the
    stop's start back over it. Bounded: the previous phone keeps at least 40 % of its length.
    """
    if len(audio) == 0:
        return segments
    rms, hop = _frame_rms(audio, sr)
    if len(rms) == 0:
        return segments
    floor = _CLOSURE_FLOOR * max(float(np.percentile(rms, 95)), 1e-9)
    names = [seg[0] for seg in segments]
    starts = [seg[1] for seg in segments]
    ends = [seg[2] for seg in segments]
    for k in range(1, len(segments)):
        if names[k] not in _STOPS:
            continue
        start = starts[k]
        limit = max(start - _CLOSURE_MAX_S, starts[k - 1] + 0.4 * (ends[k - 1] - starts[k - 1]))
        frame = int(start * sr) // hop - 1
        new_start = start
        while frame >= 0 and rms[frame] < floor and (frame * hop) / sr >= limit:
            new_start = (frame * hop) / sr
            frame -= 1
        if new_start < start:
            starts[k] = new_start
            ends[k - 1] = new_start
    return list(zip(names, starts, ends))


def _words(
    text: str, events: list, phones: list[Phone], sr: int, duration: float
) -> list[tuple[str, float, float]]:
    """Word spans from eSpeak's word events: a word owns the speech phones whose midpoints fall
    between its event and the next word's, and spans from the first one's start to the last one's end."""
    word_events = [(s, pos, length) for t, s, pos, length, _ in events if t == _EVENT_WORD]
    speech = [p for p in phones if p.phone != SILENCE]
    words = []
    for k, (sample, pos, length) in enumerate(word_events):
        word = text[max(pos - 1, 0) : max(pos - 1, 0) + length].strip()
        lo = sample / sr
        hi = word_events[k + 1][0] / sr if k + 1 < len(word_events) else duration + 1.0
        own = [p for p in speech if lo - 1e-6 <= 0.5 * (p.start + p.end) < hi]
        if word and own:
            words.append((word, float(own[0].start), float(own[-1].end)))
    return words
