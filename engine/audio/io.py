"""Read any voice recording a user is likely to have into the one format the model accepts.

Everything downstream assumes 16 kHz mono float32 without NaNs, so every check happens here, once,
with an error message that tells the user what to do instead.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

MODEL_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


class AudioError(ValueError):
    """The audio cannot be used; the message says why and what to do."""


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
    import soundfile

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
        import soxr

        audio = soxr.resample(audio, rate, target_sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)
