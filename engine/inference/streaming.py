"""Live animation: audio arrives in small pieces, frames leave as soon as they can be decoded.

Latency comes from two places: the audio look-ahead a frame waits for, and compute. Offline, a frame
attends audio up to `align_radius` frames ahead (133 ms at 30 fps) and the encoder sees 1.9 s of
future; live, a frame is decoded once `lookahead_frames` of audio beyond it have arrived (default 1
= 33 ms at 30 fps), the later audio keys it would have seen are masked, and the encoder features at
the live edge are computed with the audio there is (and `encoder_context_frames` of the past) and
refreshed on every push until each frame is decoded.
So the stream is an approximation of `Engine.animate`, close but not equal; `Stream.latencies`
records per frame the audio it waited for plus the compute of the push that emitted it.

Memory is bounded for streams of any length: the decoder state holds a fixed window of frames and
is rebased (every absolute index shifted back by a multiple of every ring-cache window, so ring
slots and relative distances are unchanged) when it fills up, and only a few seconds of audio are
kept.
"""

from __future__ import annotations

import collections
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from engine.audio.features import HOP_LENGTH as HOP
from engine.audio.features import N_FFT
from engine.audio.io import MODEL_SAMPLE_RATE, AudioError, pcm_to_float
from engine.inference.chunking import ENCODER_RATE, SUBSAMPLING
from engine.inference.decode import encoder_context
from engine.inference.schedule import EmotionSpec, parse_schedule, schedule_to_cond

STFT_HALF = N_FFT // 2  # half the FFT window: a mel frame is exact once this much audio follows its centre


@dataclass(frozen=True)
class StreamFrame:
    index: int
    time: float  # seconds from the start of the stream
    offsets: np.ndarray  # [V, 3] float32
    arkit: np.ndarray  # [52] float32


class Stream:
    """Created by `Engine.stream(...)`; not thread-safe (one producer pushes)."""

    def __init__(
        self,
        engine,
        fps: float,
        emotion: EmotionSpec,
        intensity: float,
        style: np.ndarray,
        sample_rate: int,
        lookahead_frames: int,
        capacity_frames: int = 600,
        encoder_context_frames: int = 24,
    ) -> None:
        self.engine = engine
        self.model = engine.model
        self.fps = float(fps)
        self.sample_rate = int(sample_rate)
        cfg = self.model.cfg
        if not 0 <= lookahead_frames <= cfg.align_radius:
            raise ValueError(f"lookahead_frames must be in 0..{cfg.align_radius}, got {lookahead_frames}")
        if not 8000 <= self.sample_rate <= 48000:
            raise AudioError(f"stream sample rate {sample_rate} Hz is outside 8000-48000 Hz")
        self.lookahead = int(lookahead_frames)
        self.schedule = parse_schedule(emotion, intensity)
        self.radius = cfg.align_radius
        self.device, self.dtype = engine.device, engine.dtype
        self._resampler = None
        if self.sample_rate != MODEL_SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.sample_rate, MODEL_SAMPLE_RATE, 1, dtype="float32")
        self._audio = np.zeros(0, dtype=np.float32)  # kept tail of the 16 kHz audio
        self._audio_origin = 0  # global sample index of self._audio[0]
        self._received = 0  # 16 kHz samples received so far
        self._mel = np.zeros((0, cfg.n_mels), dtype=np.float32)  # exact log-mel frames kept
        self._mel_origin = 0  # global mel frame index of self._mel[0]
        self.encoder_context = min(encoder_context(self.model), encoder_context_frames)
        self._next = 0  # next global frame to decode
        self._base = 0  # global frame index of state position 0
        self._finished = False
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)  # s, recent frames

        # The decoder state is a fixed window of `capacity` frames, rebased by `shift` when full.
        windows = [c.window for c in self._caches_of(None)]
        shift = math.lcm(*windows) if windows else 1
        self._shift = shift * max(1, math.ceil(capacity_frames / 2 / shift))
        self._capacity = 2 * self._shift + max(windows or [1]) + self.radius + 1
        d = cfg.d_model
        feat = torch.zeros(1, self._capacity, d, device=self.device, dtype=self.dtype)
        cond = torch.zeros(1, self._capacity, cfg.n_emotions, device=self.device, dtype=self.dtype)
        style_t = torch.from_numpy(np.asarray(style, dtype=np.float32)).to(self.device, self.dtype)[None]
        self._style = style_t
        valid = torch.zeros(1, self._capacity, dtype=torch.bool, device=self.device)
        with torch.inference_mode():
            self.state = self.model.start(feat, cond, style_t, valid)
            # the stream writes into these buffers: give any broadcast view its own storage
            self.state.decoder.cross = [
                tuple(b.contiguous() for b in entry) for entry in self.state.decoder.cross
            ]
            self._fill_condition(0, self._capacity)

    # ------------------------------------------------------------------------------------ public

    def push(self, samples: np.ndarray) -> list[StreamFrame]:
        """Add audio (float in -1..1 or integer PCM, mono, at the stream's rate); returns new frames."""
        if self._finished:
            raise RuntimeError("the stream was flushed; start a new one with Engine.stream()")
        started = time.perf_counter()
        samples = pcm_to_float(np.asarray(samples))
        if samples.ndim == 2:
            samples = samples.mean(axis=1 if samples.shape[1] <= samples.shape[0] else 0)
        samples = samples.astype(np.float32, copy=False).reshape(-1)
        if not np.all(np.isfinite(samples)):
            raise AudioError("pushed audio contains NaN or infinite samples")
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._append(samples)
        self._update_mel(final=False)
        ready = self._decodable_frames(final=False)
        return self._decode_until(ready, started, final=False)

    def flush(self) -> list[StreamFrame]:
        """End of audio: decode every remaining frame (the last ones with the true end of the clip)."""
        if self._finished:
            return []
        started = time.perf_counter()
        if self._resampler is not None:
            self._append(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        self._update_mel(final=True)
        frames = self._decode_until(self._decodable_frames(final=True), started, final=True)
        self._finished = True
        return frames

    # ------------------------------------------------------------------------------------ internals

    def _append(self, samples: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        self._received += samples.shape[0]

    def _update_mel(self, final: bool) -> None:
        """Extend the log-mel buffer by every frame that is now exact (its STFT window fully arrived);
        at the end, also the last frames, zero-padded like the end of an offline clip."""
        from engine.audio.features import log_mel, n_mel_frames

        first = self._mel_origin + self._mel.shape[0]
        end = n_mel_frames(self._received) if final else max(first, (self._received - STFT_HALF) // HOP + 1)
        if end <= first or self._received == 0 or (not final and self._received < 2 * STFT_HALF):
            return
        start_sample = max(0, HOP * (first - 2))  # two hops before: covers the STFT half window
        stop_sample = self._received if final else HOP * (end - 1) + STFT_HALF
        segment = self._audio[start_sample - self._audio_origin : stop_sample - self._audio_origin]
        skip = (HOP * first - start_sample) // HOP
        with warnings.catch_warnings():  # a short final piece is zero-padded, as offline
            warnings.filterwarnings("ignore", message="n_fft=.*too large")
            mel = log_mel(segment)[skip : skip + end - first]
        self._mel = np.concatenate([self._mel, mel.astype(np.float32, copy=False)])

    def _decodable_frames(self, final: bool) -> int:
        """One past the last frame whose audio (plus look-ahead) has arrived."""
        total = math.ceil(self._received / MODEL_SAMPLE_RATE * self.fps - 1e-9) if self._received else 0
        if final:
            return total
        mel_time = (self._mel_origin + self._mel.shape[0] - 1) * HOP / MODEL_SAMPLE_RATE
        return max(0, min(total, math.floor(mel_time * self.fps) - self.lookahead + 1))

    def _decode_until(self, end: int, started: float, final: bool) -> list[StreamFrame]:
        if end <= self._next:
            return []
        model = self.model
        frames: list[StreamFrame] = []
        with torch.inference_mode():
            # Features of every frame a pending frame may attend to, from the audio there is.
            first = max(0, self._next - self.radius)
            last = end + self.radius if final else end - 1 + self.lookahead  # inclusive
            total = math.ceil(self._received / MODEL_SAMPLE_RATE * self.fps - 1e-9)
            last = min(last, total - 1)
            enc_first = max(0, math.floor(first * ENCODER_RATE / self.fps) - self.encoder_context)
            mel_np = self._mel[SUBSAMPLING * enc_first - self._mel_origin :]
            mel = torch.from_numpy(mel_np).to(self.device, self.dtype)[None]
            n_enc = -(-mel.shape[1] // SUBSAMPLING)
            enc = model.audio_encoder(mel, None, ENCODER_RATE, n_enc)[0]  # [n_enc, D] at 25 Hz
            frame_ids = torch.arange(first, last + 1, device=self.device, dtype=torch.float64)
            position = frame_ids * (ENCODER_RATE / self.fps) - enc_first
            lo = position.floor().long().clamp(0, n_enc - 1)
            hi = (lo + 1).clamp(max=n_enc - 1)
            frac = (position - position.floor()).clamp(0, 1).to(enc.dtype)[:, None]
            frac = torch.where((lo + 1 > n_enc - 1)[:, None], torch.zeros_like(frac), frac)
            features = enc[lo] + (enc[hi] - enc[lo]) * frac
            self._write_features(first, features)

            while self._next < end:
                if self._next - self._base >= self._capacity - self.radius - 1:
                    self._rebase()
                offsets, arkit = model.step(self.state)
                index = self._next
                self._next += 1
                frames.append(
                    StreamFrame(
                        index=index,
                        time=index / self.fps,
                        offsets=offsets[0].float().cpu().numpy(),
                        arkit=arkit[0].float().clamp(0, 1).cpu().numpy(),
                    )
                )
        compute = time.perf_counter() - started
        received_time = self._received / MODEL_SAMPLE_RATE
        for frame in frames:
            self.latencies.append(max(0.0, received_time - frame.time) + compute)
        self._trim()
        return frames

    def _write_features(self, first_global: int, features: torch.Tensor) -> None:
        """Store the audio keys/values (and validity) of frames first_global.. in the decoder state.

        Each layer's own `precompute` runs on the new features alone and its unpadded part is copied
        into the state's padded buffers, so the stored values are exactly what `start` computes; the
        time axis of each buffer is the one as long as the state (capacity + 2 * radius)."""
        start = first_global - self._base + self.radius
        n = features.shape[0]
        valid = torch.ones(1, n, dtype=torch.bool, device=self.device)
        for layer, buffers in zip(self.model.decoder.layers, self.state.decoder.cross):
            fresh = layer.cross_attn.precompute(features[None], valid)
            for buffer, new in zip(buffers, fresh):
                axis = self._time_axis(buffer)
                target = buffer.narrow(axis, start, n)
                target.copy_(new.narrow(axis, self.radius, n))

    def _fill_condition(self, first_position: int, end_position: int) -> None:
        n = end_position - first_position
        cond = schedule_to_cond(self.schedule, n, self.fps, first_frame=self._base + first_position)
        cond_t = torch.from_numpy(cond).to(self.device, self.dtype)[None]
        self.state.decoder.condition[:, first_position:end_position] = self.model.decoder.condition(
            cond_t, self._style
        )

    def _caches_of(self, state):
        if state is None:  # before the state exists: build a throwaway one to read the windows
            cfg = self.model.cfg
            probe = torch.zeros(1, 1, cfg.d_model, device=self.device, dtype=self.dtype)
            with torch.inference_mode():
                state = self.model.start(
                    probe,
                    torch.zeros(1, 1, cfg.n_emotions, device=self.device, dtype=self.dtype),
                    torch.zeros(1, cfg.style_dim, device=self.device, dtype=self.dtype),
                )
        return [*state.decoder.caches, *state.motion.caches]

    def _time_axis(self, buffer: torch.Tensor) -> int:
        length = self._capacity + 2 * self.radius
        axes = [i for i, size in enumerate(buffer.shape) if size == length]
        if not axes:
            raise RuntimeError(f"unexpected decoder cross-attention buffer shape {tuple(buffer.shape)}")
        return axes[-1]

    def _rebase(self) -> None:
        """Shift every absolute frame index of the state back by `shift`, a multiple of every ring
        window: ring slots (t mod W) and ALiBi distances (differences) are unchanged, and t stays
        past the first window, so decoding continues exactly as without the shift."""
        shift = self._shift
        decoder, motion = self.state.decoder, self.state.motion
        decoder.t -= shift
        motion.t -= shift
        d = self.model.cfg.d_model
        silence = torch.zeros(1, shift, d, device=self.device, dtype=self.dtype)
        invalid = torch.zeros(1, shift, dtype=torch.bool, device=self.device)
        for layer, buffers in zip(self.model.decoder.layers, decoder.cross):
            empty = layer.cross_attn.precompute(silence, invalid)  # what "no audio here" looks like
            for buffer, blank in zip(buffers, empty):
                axis = self._time_axis(buffer)
                length = buffer.shape[axis]
                kept = buffer.narrow(axis, shift, length - shift).clone()
                buffer.narrow(axis, 0, length - shift).copy_(kept)
                buffer.narrow(axis, length - shift, shift).copy_(blank.narrow(axis, self.radius, shift))
        decoder.condition[:, :-shift] = decoder.condition[:, shift:].clone()
        self._base += shift
        self._fill_condition(self._capacity - shift, self._capacity)

    def _trim(self) -> None:
        """Keep only what may still be needed: audio for the next mel frames, mel for the encoder."""
        next_mel = self._mel_origin + self._mel.shape[0]
        drop = max(0, HOP * (next_mel - 2)) - self._audio_origin
        if drop > 0:
            self._audio = self._audio[drop:]
            self._audio_origin += drop
        first = max(0, self._next - self.radius)
        enc_first = max(0, math.floor(first * ENCODER_RATE / self.fps) - self.encoder_context)
        drop = SUBSAMPLING * enc_first - self._mel_origin
        if drop > 0:
            self._mel = self._mel[drop:]
            self._mel_origin += drop
