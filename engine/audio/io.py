"""Read any voice recording a user is likely to have into the one format the model accepts.

Everything downstream assumes 16 kHz mono float32 without NaNs, so every check happens here, once,
with an error message that tells the user what to do instead.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np

MODEL_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


class AudioError(ValueError):
    """The audio cannot be used; the message says why and what to do."""


class AudioWarning(UserWarning):
    """The audio is usable but damaged (for example cut short); the message says what was used."""


_UNKNOWN_CHUNK_SIZE = 0xFFFFFFFF  # streaming writers leave the data size open


def load_audio(
    path_or_array: str | Path | np.ndarray,
    sample_rate: int | None = None,
    target_sr: int = MODEL_SAMPLE_RATE,
) -> np.ndarray:
    """Return `path_or_array` as float32 mono at `target_sr`.

    Files: wav, flac, ogg, mp3 (and anything ffmpeg reads). Arrays: `[n]`, `[n, channels]` or
    `[channels, n]` (the shorter axis is taken as channels), integers are scaled to -1..1, and
    `sample_rate` is required because a bare array has no rate. All-silent audio is valid.
    """
    if isinstance(path_or_array, (str, Path)):
        if sample_rate is not None:
            raise AudioError(
                "sample_rate is only for arrays; a file carries its own rate -- drop the argument"
            )
        audio, rate = _read_file(Path(path_or_array))
    else:
        if sample_rate is None:
            raise AudioError(
                "an audio array needs its sample rate: pass sample_rate=... (for example 16000 or 44100)"
            )
        audio, rate = pcm_to_float(np.asarray(path_or_array)), int(sample_rate)
    return _to_model_format(audio, rate, target_sr)


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise AudioError(f"audio file not found: {path} -- check the path")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes) -- re-export the recording")
    try:
        import soundfile
    except ImportError:  # a stock Blender: the standard library's wave, or Blender's aud
        from engine.audio.stock_io import read_without_soundfile

        _warn_if_truncated_wav(path)
        audio, rate = read_without_soundfile(path)
        return audio.mean(axis=1, dtype=np.float64).astype(np.float32), rate

    _warn_if_truncated_wav(path)
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as soundfile_error:  # noqa: BLE001 - any libsndfile failure means "try ffmpeg"
        decoded = _read_with_ffmpeg(path)
        if decoded is None:
            raise AudioError(
                f"cannot decode {path.name}: not a readable audio file ({soundfile_error}). "
                "Use wav, flac, ogg or mp3."
            ) from None
        audio, rate = decoded
    return audio.mean(axis=1, dtype=np.float64).astype(np.float32) if audio.shape[0] else audio[:, 0], int(
        rate
    )


def _warn_if_truncated_wav(path: Path) -> None:
    """A WAV whose data chunk promises more bytes than the file holds was cut short (an interrupted
    copy or recording): decoders read what is there without a word, so say it once here."""
    shortfall = _wav_data_shortfall(path)
    if shortfall is not None:
        declared, present = shortfall
        warnings.warn(
            f"{path.name} is truncated: its data chunk declares {declared} bytes but only {present} are in the "
            f"file; using the {present * 100 // max(declared, 1)}% that is there -- re-export or copy the "
            "recording again for the full take",
            AudioWarning,
            stacklevel=4,
        )


def _wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """(declared, present) data bytes of a RIFF/WAVE file that is shorter than its header says, else None."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                present = size - position - 8
                if chunk_size != _UNKNOWN_CHUNK_SIZE and chunk_size > present:
                    return chunk_size, present
                return None
            position += 8 + chunk_size + (chunk_size & 1)
    return None


def _read_with_ffmpeg(path: Path) -> tuple[np.ndarray, int] | None:
    """Formats libsndfile lacks (m4a, old mp3 builds): ffmpeg decodes to float32 at the file's own rate."""
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        return None
    probe = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rate_text = probe.stdout.strip().splitlines()[0] if probe.stdout.strip() else ""
    if probe.returncode != 0 or not rate_text.isdigit():
        return None
    rate = int(rate_text)
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-"],
        capture_output=True,
        timeout=600,
    )
    if result.returncode != 0:
        return None
    audio = np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)
    return audio[:, None], rate


def pcm_to_float(audio: np.ndarray) -> np.ndarray:
    """Integer PCM (signed or unsigned) -> float32 in -1..1; float input passes through."""
    if audio.dtype.kind in "iu":
        info = np.iinfo(audio.dtype)
        scale = float(max(abs(info.min), info.max))
        offset = 0.0 if info.min < 0 else (info.max + 1) / 2.0
        return ((audio.astype(np.float64) - offset) / scale).astype(np.float32)
    if audio.dtype.kind == "b" or audio.dtype.kind not in "f":
        raise AudioError(f"audio array has dtype {audio.dtype}; pass float or integer PCM samples")
    return audio.astype(np.float32, copy=False)


def _to_model_format(audio: np.ndarray, rate: int, target_sr: int) -> np.ndarray:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"sample rate {rate} Hz is outside the supported {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz; "
            "resample the recording (for example to 16000 or 44100 Hz)"
        )
    if audio.size == 0:
        raise AudioError("the audio has no samples (zero length) -- check the recording")
    if audio.ndim == 2:
        channel_axis = 1 if audio.shape[1] <= audio.shape[0] else 0
        audio = audio.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)
    elif audio.ndim != 1:
        raise AudioError(f"audio must be [samples] or [samples, channels]; got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioError("the audio contains NaN or infinite samples -- the file or array is corrupt")
    if rate != target_sr:
        try:
            import soxr
        except ImportError:  # a stock Blender: Blender's aud resamples
            from engine.audio.stock_io import resample_without_soxr

            return resample_without_soxr(audio, rate, target_sr)
        audio = soxr.resample(audio, rate, target_sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)
