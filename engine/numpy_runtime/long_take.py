"""Takes of any length in flat memory: audio read in blocks, finished frames streamed to the .npz on disk.

An hour of 16 kHz audio is 230 MB as float32 and its motion 600 MB, so a long take never holds
either. The recording is converted block by block into a raw 16 kHz file; a pass over it measures
the speech level (engine.audio.level.LevelMeter), a second scales it in place and measures the
10 ms frame levels the rest weights come from (engine.inference.rest.FrameLevels): both are what
`Engine.animate` computes from the whole waveform. The decoder then runs group by group on features
computed for just that group's frames, cut exactly where the in-memory take cuts them (log-mel
pieces of engine.api.mel_pieces, the audio encoder's windows, decode groups of
engine.numpy_runtime.decode.GROUP_CHUNKS chunks), so the motion is the in-memory take's. Frames that
no later chunk touches are finished (rest in pauses, ARKit refit: engine.inference.finish.finish_frames,
frame by frame) and go straight to raw files; phones are read from the log-probs in pieces cut where
no phone can reach across (so they equal the whole-take read); the .npz is assembled from the raw
files at the end. Memory stays that of one group (about 80 s).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.io import MODEL_SAMPLE_RATE
from engine.inference.chunking import ENCODER_CORE_FRAMES, DecodePlan, encoder_context_frames, plan_windows
from engine.inference.control import check_cancel
from engine.inference.schedule import schedule_to_cond
from engine.numpy_runtime import decode as numpy_decode
from engine.numpy_runtime.decode import (
    ENCODER_RATE,
    SUBSAMPLING,
    DecodeJob,
    NumpyClip,
    audio_valid_frames,
    decode_group,
    group_batch,
    merge_group,
    plan_jobs,
)
from engine.numpy_runtime.network import Network

BLOCK_SAMPLES = 16000 * 10  # audio conversion and level-measuring block
FINISH_FRAMES = 512  # frames finished (rest blend, ARKit refit) and written at a time
PHONE_PIECE_FRAMES = 3000  # log-prob frames gathered before phones are read from them


@dataclass
class WrittenTake:
    """What a streamed take wrote: enough for the CLI's summary and the caption files."""

    fps: float
    n_frames: int
    audio_phonemes: list = field(default_factory=list)
    lip_phonemes: list = field(default_factory=list)
    captions: list = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.n_frames / float(self.fps)


def recording_seconds(path: str | Path) -> float:
    """The length of a recording from its header (nothing decoded); 0.0 when no reader can tell."""
    try:
        import soundfile

        info = soundfile.info(str(path))
        return float(info.frames) / float(info.samplerate)
    except Exception:  # noqa: BLE001 - no soundfile (a stock Blender) or a format it lacks
        pass
    try:
        import wave

        with wave.open(str(path), "rb") as f:
            return f.getnframes() / float(f.getframerate())
    except Exception:  # noqa: BLE001 - not a PCM WAV either: the in-memory path reads it
        return 0.0


class AudioFile16k:
    """A recording as 16 kHz mono float32 in a raw temporary file, read back by sample range."""

    def __init__(self, path: str | Path, folder: Path) -> None:
        self.raw = folder / "audio_16k.f32"
        self.n_samples = _convert_to_raw(Path(path), self.raw)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.n_samples, stop)
        return np.fromfile(self.raw, dtype="<f4", count=max(0, stop - start), offset=4 * start)

    def normalize_level(self, cancel=None) -> np.ndarray:
        """Scale the recording in place as engine.audio.level.normalize_level scales the whole array;
        -> the frame levels of the scaled recording (engine.inference.rest.frame_levels_db)."""
        from engine.audio.level import LevelMeter, apply_gain
        from engine.inference.rest import FrameLevels

        meter = LevelMeter()
        for start in range(0, self.n_samples, BLOCK_SAMPLES):
            check_cancel(cancel)
            meter.push(self.read(start, start + BLOCK_SAMPLES))
        gain = meter.gain()
        levels = FrameLevels(MODEL_SAMPLE_RATE)
        with self.raw.open("r+b") as raw:
            for start in range(0, self.n_samples, BLOCK_SAMPLES):
                check_cancel(cancel)
                block = apply_gain(self.read(start, start + BLOCK_SAMPLES), gain)
                levels.push(block)
                if gain is not None:
                    raw.seek(4 * start)
                    raw.write(block.astype("<f4").tobytes())
        return levels.levels()


def _convert_to_raw(path: Path, raw: Path) -> int:
    """Decode, mix to mono and resample to 16 kHz block by block (engine.audio.io's rules)."""
    from engine.audio.io import (
        MAX_SAMPLE_RATE,
        MIN_SAMPLE_RATE,
        AudioError,
        _warn_if_truncated_wav,
        load_audio,
    )

    try:
        import soundfile

        source = soundfile.SoundFile(str(path))
    except Exception:  # noqa: BLE001 - anything libsndfile cannot open goes through load_audio
        audio = load_audio(path)
        audio.astype("<f4").tofile(raw)
        return int(audio.shape[0])
    _warn_if_truncated_wav(path)
    written = 0
    with source, raw.open("wb") as out:
        rate = int(source.samplerate)
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise AudioError(
                f"sample rate {rate} Hz is outside the supported {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz; "
                "resample the recording (for example to 16000 or 44100 Hz)"
            )
        resampler = None
        if rate != MODEL_SAMPLE_RATE:
            import soxr

            resampler = soxr.ResampleStream(rate, MODEL_SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        while True:
            block = source.read(BLOCK_SAMPLES, dtype="float32", always_2d=True)
            last = block.shape[0] < BLOCK_SAMPLES
            mono = block.mean(axis=1, dtype=np.float64).astype(np.float32)
            if not np.all(np.isfinite(mono)):
                raise AudioError("the audio contains NaN or infinite samples -- the file or array is corrupt")
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            out.write(mono.astype("<f4").tobytes())
            written += mono.shape[0]
            if last:
                break
    if written == 0:
        raise AudioError("the audio has no samples (zero length) -- check the recording")
    return written


class FeatureReader:
    """Audio features of any frame range, equal to the whole-clip windowed encoding: log-mel in the
    pieces engine.api.log_mel_windowed computes and the audio encoder over the windows
    engine.numpy_runtime.decode.encode_audio_windowed runs, so every number is the same."""

    def __init__(self, net: Network, audio: AudioFile16k, fps: float, n_frames: int) -> None:
        from engine.api import mel_pieces
        from engine.audio.features import n_mel_frames

        self.net, self.audio, self.fps, self.n_frames = net, audio, fps, n_frames
        self.n_mel = n_mel_frames(audio.n_samples)
        self.n_enc = -(-self.n_mel // SUBSAMPLING)
        cfg = net.cfg
        context = encoder_context_frames(cfg["audio_layers"], cfg["audio_window"])
        self.windows = plan_windows(self.n_enc, ENCODER_CORE_FRAMES, context)
        self.pieces = mel_pieces(audio.n_samples)
        self.valid = audio_valid_frames(self.n_mel, fps, n_frames)
        self._recent: dict[tuple[str, int], np.ndarray] = {}  # the last mel pieces and encoder windows

    def _computed(self, kind: str, index: int, compute: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        """A mel piece or encoder window, kept while the next group may need it again (groups overlap)."""
        key = (kind, index)
        if key not in self._recent:
            for old in [k for k in self._recent if k[0] == kind and k[1] < index - 1]:
                del self._recent[old]
            self._recent[key] = compute(*args)
        return self._recent[key]

    def mel(self, first: int, last: int) -> np.ndarray:
        """Log-mel frames [first, last)."""
        from engine.api import log_mel_piece

        parts = []
        for index, (a, b) in enumerate(self.pieces):
            if a < last and b > first:
                piece = self._computed(
                    "mel", index, log_mel_piece, self.audio.read, self.audio.n_samples, a, b
                )
                parts.append(piece[max(first, a) - a : min(last, b) - a])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def features(self, f0: int, f1: int) -> np.ndarray:
        """[f1 - f0, D] features of motion frames f0 .. f1-1."""
        times = np.arange(f0, f1, dtype=np.float32) * np.float32(ENCODER_RATE / self.fps)
        floor = np.floor(times)
        lo = floor.astype(np.int64)
        last = self.n_enc - 1
        e0, e1 = int(min(lo[0], last)), int(min(lo[-1] + 1, last)) + 1
        encoded = self.encoded(e0, e1)
        frac = (times - floor)[:, None]
        frac[lo + 1 > last] = 0.0
        f_lo = encoded[np.minimum(lo, last) - e0]
        f_hi = encoded[np.minimum(lo + 1, last) - e0]
        return f_lo + (f_hi - f_lo) * frac

    def encoded(self, e0: int, e1: int) -> np.ndarray:
        """Audio-encoder frames e0 .. e1-1, each from the window whose core holds it."""
        parts = []
        for index, w in enumerate(self.windows):
            if w.keep_start < e1 and w.keep_end > e0:
                out = self._computed("encoder", index, self._encode_window, w)
                parts.append(out[max(e0, w.keep_start) - w.start : min(e1, w.keep_end) - w.start])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _encode_window(self, window) -> np.ndarray:
        return self.net.audio_encoder(
            self.mel(window.start * SUBSAMPLING, min(self.n_mel, window.end * SUBSAMPLING))
        )


class RollingFrames:
    """The not-yet-final frames of a long output, indexed by absolute frame; final ones are taken out.
    One buffer, grown when a group needs more and reused for the next group."""

    def __init__(self, frame_shape: tuple[int, ...]) -> None:
        self.start = 0
        self.length = 0  # frames held: start .. start+length-1
        self.data = np.zeros((0, *frame_shape), dtype=np.float32)

    def _local(self, index: slice) -> slice:
        stop = index.stop - self.start
        if stop > self.data.shape[0]:
            grown = np.zeros((stop, *self.data.shape[1:]), dtype=np.float32)
            grown[: self.length] = self.data[: self.length]
            self.data = grown
        return slice(index.start - self.start, stop)

    def __getitem__(self, index: slice) -> np.ndarray:
        local = self._local(index)  # may grow (replace) self.data
        return self.data[local]

    def __setitem__(self, index: slice, value: np.ndarray) -> None:
        local = self._local(index)
        self.data[local] = value
        self.length = max(self.length, local.stop)

    def reserve(self, upto: int) -> None:
        """Room for frames up to `upto` (one allocation for a whole group, not one per chunk)."""
        self._local(slice(upto, upto))

    def final(self, upto: int) -> np.ndarray:
        """Frames start .. upto-1, which are final (a view: use it before `drop`)."""
        return self.data[: max(0, upto - self.start)]

    def drop(self, upto: int) -> None:
        """Forget the frames before `upto`; the rest move to the front of the buffer."""
        count = max(0, upto - self.start)
        rest = self.data[count : self.length].copy()
        self.data[: len(rest)] = rest
        self.data[len(rest) :] = 0.0
        self.start, self.length = self.start + count, len(rest)


class PhoneReader:
    """CTC phones of a long log-prob stream, read in pieces that give the whole-stream result."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.start = 0
        self.pending = np.zeros((0, 0), dtype=np.float32)
        self.phones: list = []

    def push(self, logprobs: np.ndarray, final: bool = False) -> None:
        from engine.captions import ctc_greedy_phones

        self.pending = logprobs if self.pending.size == 0 else np.concatenate([self.pending, logprobs])
        cut = self.pending.shape[0] if final else None
        if not final and self.pending.shape[0] >= PHONE_PIECE_FRAMES:
            cut = safe_phone_cut(self.pending.argmax(axis=1), self.fps)
        if cut:
            for phone in ctc_greedy_phones(self.pending[:cut], self.fps):
                # times as the whole-stream read computes them (frame / fps): an offset added to a
                # piece's times rounds differently, and captions compare gaps to exact limits
                self.phones.append(
                    replace(phone, start=self._absolute(phone.start), end=self._absolute(phone.end))
                )
            self.pending = self.pending[cut:].copy()
            self.start += cut

    def _absolute(self, seconds: float) -> float:
        return (self.start + round(seconds * self.fps)) / self.fps


def safe_phone_cut(best: np.ndarray, fps: float) -> int | None:
    """A frame c where a best-path CTC read can be split: c-1 is blank and no phone before c is
    stretched (engine.captions.ctc_greedy_phones) past c. None when the piece has no such frame."""
    stretch = int(round(0.08 * fps))
    nonblank = np.flatnonzero(best)
    for c in range(best.shape[0] - 1, 0, -1):
        if best[c - 1] != 0:
            continue
        k = np.searchsorted(nonblank, c) - 1
        if k < 0:
            return c
        end = int(nonblank[k]) + 1
        first = end - 1
        while first > 0 and best[first - 1] == best[end - 1]:
            first -= 1
        if end + max(end - first, stretch) <= c:
            return c
    return None


class LipReaderStream:
    """The lip reader's +-2 frame convolution over motion embeddings that arrive in pieces."""

    def __init__(self, net: Network, phones: PhoneReader) -> None:
        self.net, self.phones = net, phones
        self.frames = np.zeros((0, net.cfg["d_model"]), dtype=np.float32)
        self.first = 0  # absolute index of frames[0]
        self.done = 0  # first frame whose log-probs are not out yet

    def push(self, motion: np.ndarray, final: bool = False) -> None:
        self.frames = np.concatenate([self.frames, motion])
        end = self.first + self.frames.shape[0]
        emit_to = end if final else end - 2  # a frame needs the 2 after it (or the take's end)
        if emit_to > self.done:
            w0 = max(self.first, self.done - 2)
            window = self.frames[w0 - self.first : min(end, emit_to + 2) - self.first]
            self.phones.push(self.net.lip_reader(window)[self.done - w0 : emit_to - w0], final)
            self.done = emit_to
        elif final:
            self.phones.push(np.zeros((0, self.net.cfg["n_phones"]), np.float32), final)
        keep = max(self.first, self.done - 2)
        self.frames = self.frames[keep - self.first :].copy()
        self.first = keep


@dataclass
class LongTakeJob:
    """A take to stream: the request's fields the decoder and the writers need."""

    audio: Path
    fps: float
    schedule: list
    style: np.ndarray
    output: Path | None
    caption_files: tuple = ()
    captions: bool = True
    language: str = "en"
    meta: dict[str, Any] = field(default_factory=dict)
    closure_detector: Any = None  # engine.closure.detector.ClosureDetector; None: no closure step


def animate_to_files(
    net: Network,
    job: LongTakeJob,
    plan: DecodePlan,
    progress: Callable[[float], None] | None = None,
    cancel=None,
) -> WrittenTake:
    """Animate `job.audio` and write the take (.npz) and caption files it names; all or nothing.
    `progress(fraction)` is called as work proceeds; setting the `cancel` Event stops with Cancelled."""
    import time

    from engine.captions import build_captions

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dualface_take_") as name:
        folder = Path(name)
        n_frames, audio_phones, lip_phones = _decode_to_raw(net, job, plan, folder, progress, cancel)
        captions = build_captions(lip_phones, audio_phones, job.language) if job.captions else []
        meta = {**job.meta, "batch_seconds": round(time.perf_counter() - started, 4)}  # as Engine.animate
        take = WrittenTake(job.fps, n_frames, audio_phones, lip_phones, captions, meta)
        check_cancel(cancel)
        _write_files(net, job, take, folder)
    if progress is not None:
        progress(1.0)
    return take


PREPARE_SHARE = 0.05  # of the progress bar: converting the audio and measuring its levels


def _decode_to_raw(net: Network, job: LongTakeJob, plan: DecodePlan, folder: Path, progress, cancel):
    """Decode group by group; finished offsets and ARKit go to raw files in `folder`.
    -> (frames, audio phones, lip phones)"""
    from engine.audio.features import n_motion_frames
    from engine.closure.close import recording_closure_weights
    from engine.inference.rest import rest_weights_from_levels

    cfg = net.cfg
    audio = AudioFile16k(job.audio, folder)
    n_frames = n_motion_frames(audio.n_samples, job.fps)
    # the level training saw, as Engine.animate does; the pauses' rest weights from the scaled levels
    rest = rest_weights_from_levels(audio.normalize_level(cancel), job.fps, n_frames)
    closure = recording_closure_weights(audio.read, audio.n_samples, job.fps, n_frames, job.closure_detector)
    if progress is not None:
        progress(PREPARE_SHARE)
    audio_phones, lip_phones = PhoneReader(job.fps), PhoneReader(job.fps)
    state = _TakeState(net, job, plan, FeatureReader(net, audio, job.fps, n_frames), audio_phones)
    lips = LipReaderStream(net, lip_phones)
    jobs = plan_jobs(0, n_frames, plan)
    size = numpy_decode.GROUP_CHUNKS  # the in-memory decode's groups: the same batches, the same numbers
    groups = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    with (folder / "offsets.f32").open("wb") as offsets_raw, (folder / "arkit.f32").open("wb") as arkit_raw:
        for number, group in enumerate(groups):
            state.decode(
                group,
                max(j.chunk.length for j in jobs),
                _group_progress(progress, number, len(groups)),
                cancel,
            )
            final = groups[number + 1][0].chunk.own_start if number + 1 < len(groups) else n_frames
            offsets, arkit, motion = (target.final(final) for target in state.targets)
            first = state.targets[0].start
            for a in range(0, len(offsets), FINISH_FRAMES):  # small pieces: no copy of a whole group
                done = _finish(
                    offsets[a : a + FINISH_FRAMES],
                    arkit[a : a + FINISH_FRAMES],
                    rest,
                    closure,
                    first + a,
                    job,
                )
                offsets_raw.write(np.ascontiguousarray(done[0], dtype="<f4").data)
                arkit_raw.write(np.ascontiguousarray(done[1], dtype="<f4").data)
            lips.push(motion.copy())
            del offsets, arkit, motion
            for target in state.targets:
                target.drop(final)
    lips.push(np.zeros((0, cfg["d_model"]), np.float32), final=True)
    audio_phones.push(np.zeros((0, cfg["n_phones"]), np.float32), final=True)
    return n_frames, audio_phones.phones, lip_phones.phones


class _TakeState:
    """The decoder's side of a long take: features, the not-yet-final frames, the audio phones."""

    def __init__(self, net, job: LongTakeJob, plan: DecodePlan, reader: FeatureReader, phones) -> None:
        cfg = net.cfg
        self.net, self.job, self.plan, self.reader, self.phones = net, job, plan, reader, phones
        self.targets = (
            RollingFrames((cfg["n_vertices"], 3)),
            RollingFrames((cfg["n_arkit"],)),
            RollingFrames((cfg["d_model"],)),
        )
        self.audio_done = 0  # audio log-probs are out for frames before this

    def decode(self, group: list[DecodeJob], steps: int, report, cancel) -> None:
        """Decode one group of chunks and cross-fade it into the targets (its buffers die here)."""
        from engine.inference.chunking import Chunk

        net = self.net
        f0 = group[0].chunk.decode_start
        f1 = min(self.reader.n_frames, group[-1].chunk.decode_start + steps + net.cfg["align_radius"])
        for target in self.targets:
            target.reserve(f1)
        features = self.reader.features(f0, f1)
        own_end = group[-1].chunk.own_end
        self.phones.push(net.audio_logprobs(features[self.audio_done - f0 : own_end - f0]))
        self.audio_done = own_end
        cond = schedule_to_cond(self.job.schedule, f1 - f0, self.job.fps, f0)
        clip = NumpyClip(features, self.reader.valid[f0:f1], cond, self.job.style)
        local = [
            DecodeJob(
                0, Chunk(j.chunk.decode_start - f0, j.chunk.own_start - f0, j.chunk.own_end - f0), j.first
            )
            for j in group
        ]
        rows = decode_group(group_batch(net, [clip], local, steps), steps, cancel, report)
        merge_group(net, group, rows, [self.targets], self.plan.fade_frames)


def _group_progress(progress, number: int, total: int) -> Callable[[float], None] | None:
    """Progress within decode group `number` of `total`, after the preparation's share."""
    if progress is None:
        return None
    return lambda fraction: progress(PREPARE_SHARE + (1.0 - PREPARE_SHARE) * (number + fraction) / total)


def _finish(
    offsets: np.ndarray,
    arkit: np.ndarray,
    rest: np.ndarray,
    closure: np.ndarray,
    first: int,
    job: LongTakeJob,
):
    """engine.inference.finish of the final frames first .. first+len-1, given the rest and closure
    weights of the whole take."""
    from engine.inference.finish import finish_frames, finishes

    if not finishes(offsets):
        return offsets, np.clip(arkit, 0.0, 1.0)
    span = slice(first, first + len(offsets))
    cond = schedule_to_cond(job.schedule, len(offsets), job.fps, first)  # the frames' own conditioning
    return finish_frames(offsets, arkit, rest[span], closure[span], job.fps, cond, job.style)


def _write_files(net: Network, job: LongTakeJob, take: WrittenTake, folder: Path) -> None:
    """The .npz (arrays copied from the raw files in blocks) and the caption files, atomically."""
    from contextlib import ExitStack

    from engine.animation import Animation
    from engine.atomic_file import atomic_output
    from engine.captions import write_captions

    cfg = net.cfg
    n = take.n_frames
    # Animation.save owns the info record's format: save an empty take and reuse its info entry.
    header = Animation(
        fps=job.fps,
        offsets=np.zeros((0, cfg["n_vertices"], 3), np.float32),
        arkit=np.zeros((0, cfg["n_arkit"]), np.float32),
        audio_phonemes=take.audio_phonemes,
        lip_phonemes=take.lip_phonemes,
        captions=take.captions,
        meta=take.meta,
    ).save(folder / "info.npz")
    with zipfile.ZipFile(header) as archive:
        info = archive.read("info.npy")
    # Caption writers read only phones, captions and the duration: arrays that cost no memory.
    view = Animation(
        fps=job.fps,
        offsets=np.broadcast_to(np.zeros((1, cfg["n_vertices"], 3), np.float32), (n, cfg["n_vertices"], 3)),
        arkit=np.broadcast_to(np.zeros((1, cfg["n_arkit"]), np.float32), (n, cfg["n_arkit"])),
        audio_phonemes=take.audio_phonemes,
        lip_phonemes=take.lip_phonemes,
        captions=take.captions,
        meta=take.meta,
    )
    with ExitStack() as stack:
        for path in job.caption_files:
            write_captions(view, stack.enter_context(atomic_output(path, "caption file")))
        if job.output is not None:
            target = stack.enter_context(atomic_output(job.output, "take file"))
            with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                _copy_array(archive, "offsets.npy", folder / "offsets.f32", (n, cfg["n_vertices"], 3))
                _copy_array(archive, "arkit.npy", folder / "arkit.f32", (n, cfg["n_arkit"]))
                archive.writestr("info.npy", info)


def _copy_array(archive: zipfile.ZipFile, name: str, raw: Path, shape: tuple[int, ...]) -> None:
    """One float32 .npy entry whose data is the raw file, copied in blocks (never all in memory)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with archive.open(name, "w", force_zip64=True) as entry, raw.open("rb") as source:
        entry.write(header.getvalue())
        while block := source.read(1 << 22):
            entry.write(block)
