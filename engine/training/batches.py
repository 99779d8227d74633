"""From `Clip`s to the model's batch dict: features, aligned random crops, padding, bucketing.

Mels are cached on disk (one memory-mapped .npy per clip, keyed by the audio file's size and mtime)
because computing them costs more than a training step on CPU and they never change between epochs.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from engine.audio.features import FRAME_RATE as MEL_FPS
from engine.audio.features import N_MELS
from engine.data.record import Clip, Phone
from engine.emotions import EMOTIONS, emotion_id
from engine.phonemes import SILENCE, phone_id

CACHE_FORMAT = 1  # bump when the cached arrays change meaning


def compute_mel(audio_path: Path) -> np.ndarray:
    import soundfile as sf

    from engine.audio.features import log_mel

    try:
        audio, sr = sf.read(str(audio_path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise ValueError(f"cannot read audio {audio_path}: {exc}; re-export it as a WAV file") from exc
    mel = np.asarray(log_mel(audio.mean(axis=1), int(sr)), dtype=np.float32)
    if mel.ndim != 2 or mel.shape[1] != N_MELS:
        raise RuntimeError(f"log_mel returned shape {mel.shape}, expected [Tm, {N_MELS}]")
    return mel


def _carried_mel(clip: Clip) -> np.ndarray:
    """The log-mels an unpacked corpus carries instead of its audio (engine.data.pack)."""
    assert clip.mel_path is not None
    try:
        mel = np.load(clip.mel_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"clip {clip.clip_id}: cannot read {clip.mel_path}: {exc}; unpack the corpus again"
        ) from exc
    if mel.ndim != 2 or mel.shape[1] != N_MELS or mel.dtype != np.float32:
        raise ValueError(
            f"clip {clip.clip_id}: {clip.mel_path} holds {mel.dtype} {mel.shape}, expected float32 [Tm, {N_MELS}]"
        )
    return mel


class MelCache:
    """Log-mels by clip, stored as `<cache_dir>/<clip_id>-<key>.npy` and memory-mapped on use.

    Nothing is held in memory between calls (a 40-hour corpus has about 4.6 GB of mels, per data-
    parallel process); the page cache makes re-reads cheap. The key hashes the audio file's size and
    mtime, so an edited wav gets fresh features. Without a cache dir (read-only dataset, eval of a
    few clips) the mels live in memory instead.
    """

    def __init__(self, cache_dir: Path | None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, np.ndarray] = {}
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError:
                self.cache_dir = None  # read-only dataset: keep features in memory only

    @staticmethod
    def _stem(clip: Clip) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in clip.clip_id)

    def _file(self, clip: Clip) -> Path:
        assert self.cache_dir is not None
        stat = Path(clip.audio_path).stat()
        key = f"{CACHE_FORMAT}:{clip.clip_id}:{stat.st_size}:{stat.st_mtime_ns}"
        return self.cache_dir / f"{self._stem(clip)}-{zlib.crc32(key.encode()):08x}.npy"

    def mel(self, clip: Clip) -> np.ndarray:
        """[Tm, 80] float32 (a read-only memory map when cached on disk)."""
        if clip.clip_id in self._memory:
            return self._memory[clip.clip_id]
        if clip.mel_path is not None:
            return _carried_mel(clip)
        if not Path(clip.audio_path).is_file():
            raise FileNotFoundError(f"clip {clip.clip_id}: audio {clip.audio_path} is missing")
        if self.cache_dir is None:
            self._memory[clip.clip_id] = compute_mel(Path(clip.audio_path))
            return self._memory[clip.clip_id]
        file = self._file(clip)
        if file.is_file():
            try:
                mel = np.load(file, mmap_mode="r")
                if mel.ndim == 2 and mel.shape[1] == N_MELS and mel.dtype == np.float32:
                    return mel
            except (OSError, ValueError):
                pass  # a torn or foreign file: recompute it
        mel = compute_mel(Path(clip.audio_path))
        for stale in self.cache_dir.glob(f"{self._stem(clip)}-*.npy"):
            if ".partial" not in stale.name:  # another process's file in flight is not stale
                stale.unlink(missing_ok=True)  # features of an older version of this wav
        tmp = file.with_name(f"{file.stem}.{os.getpid()}.partial.npy")
        np.save(tmp, mel)
        tmp.replace(file)  # atomic: parallel ranks may write the same clip
        return mel

    def warm(self, clips: Sequence[Clip], progress: bool = False) -> None:
        """Compute missing features up front so the first epoch is not slower than the others."""
        items = clips
        if progress:
            from tqdm import tqdm

            items = tqdm(clips, desc="features", unit="clip", leave=False)
        for clip in items:
            self.mel(clip)


def style_vector(clip: Clip) -> np.ndarray:
    """The speaker-style conditioning; the neutral style for data without one (real captures)."""
    from engine.data.style import SpeakerStyle

    style = clip.meta.get("style") if clip.meta else None
    if style is None:
        return np.asarray(SpeakerStyle().as_vector(), dtype=np.float32)
    if isinstance(style, dict):
        return np.asarray(SpeakerStyle(**style).as_vector(), dtype=np.float32)
    return np.asarray(SpeakerStyle.from_vector(style).as_vector(), dtype=np.float32)


def phone_labels(phones: Sequence[Phone] | None, start: float = 0.0, end: float = math.inf) -> list[int]:
    """CTC targets: the phones centred inside [start, end), silence dropped, direct repeats merged.

    A repeated phone across a word boundary (the "t t" of "at ten") is one gesture on the lips, so
    it is one label; the same phone on both sides of a pause stays two.
    """
    labels: list[int] = []
    previous: str | None = None
    for p in phones or []:
        centre = 0.5 * (p.start + p.end)
        if not start <= centre < end:
            continue
        if p.phone != SILENCE and p.phone != previous:
            labels.append(phone_id(p.phone))
        previous = p.phone
    return labels


def emotion_cond(clip: Clip, n_frames: int, use_emotion: bool = True) -> np.ndarray:
    """Per-frame emotion one-hot times intensity ([T, 8]); zeros when emotion is ablated."""
    cond = np.zeros((n_frames, len(EMOTIONS)), dtype=np.float32)
    if use_emotion:
        cond[:, emotion_id(clip.emotion)] = float(clip.intensity)
    return cond


def choose_crop(
    n_frames: int, n_mels: int, fps: float, crop_seconds: float | None, rng: np.random.Generator | None
) -> tuple[int, int, int, int]:
    """(frame_start, frame_count, mel_start, mel_count) of one aligned window of the clip."""
    if crop_seconds is None or crop_seconds <= 0 or n_frames / fps <= crop_seconds:
        return 0, n_frames, 0, n_mels
    frame_count = max(1, int(round(crop_seconds * fps)))
    frame_start = int(rng.integers(0, n_frames - frame_count + 1)) if rng is not None else 0
    mel_start = min(int(round(frame_start / fps * MEL_FPS)), max(n_mels - 1, 0))
    mel_count = max(1, min(int(round(frame_count / fps * MEL_FPS)), n_mels - mel_start))
    return frame_start, frame_count, mel_start, mel_count


class ClipDataset(torch.utils.data.Dataset):
    """One training example per clip; a fresh random crop every epoch, reproducible from the seed."""

    def __init__(
        self,
        clips: Sequence[Clip],
        mel_cache: MelCache,
        crop_seconds: float | None = None,
        seed: int = 0,
        use_emotion: bool = True,
    ):
        if not clips:
            raise ValueError("no clips to train on; check --data and the split names in splits.json")
        self.clips = list(clips)
        self.mel_cache = mel_cache
        self.crop_seconds = crop_seconds
        self.seed = int(seed)
        self.use_emotion = use_emotion
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        mel = self.mel_cache.mel(clip)
        n_frames = int(np.shape(clip.vertices)[0])
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.crop_seconds else None
        f0, nf, m0, nm = choose_crop(n_frames, len(mel), clip.fps, self.crop_seconds, rng)
        t0, t1 = f0 / clip.fps, (f0 + nf) / clip.fps
        if f0 == 0 and nf == n_frames:
            t1 = math.inf  # the whole clip: keep phones that end a hair after the last frame
        template = np.asarray(clip.template, dtype=np.float32)
        # slice before converting: vertices are memory-mapped and clips can be minutes long
        offsets = np.asarray(clip.vertices[f0 : f0 + nf], dtype=np.float32) - template[None]
        return {
            "clip_id": clip.clip_id,
            "fps": float(clip.fps),
            "mel": mel[m0 : m0 + nm],
            "offsets": offsets,
            "arkit": None if clip.arkit is None else np.asarray(clip.arkit[f0 : f0 + nf], dtype=np.float32),
            "cond": emotion_cond(clip, nf, self.use_emotion),
            "style": style_vector(clip),
            "phones": None if clip.phones is None else phone_labels(clip.phones, t0, t1),
            "template": template,
        }


def collate(items: Sequence[dict]) -> dict:
    """The batch dict of engine.model.batch.collate, plus `clip_ids` (a list, for logs).

    Clips without ARKit weights or phones (real captures) must not share a batch with clips that
    have them: the losses skip a term for a whole batch. `bucket_key` keeps them apart.
    """
    from engine.model.batch import collate as model_collate

    batch = model_collate(items)
    batch["clip_ids"] = [it["clip_id"] for it in items]
    return batch


def to_device(batch: dict, device: torch.device | str) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


class FpsBucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Shuffled batches that never mix bucket keys (frame rate, mesh, labels), sharded over data-parallel ranks.

    It does the job of DistributedSampler (disjoint shards, `set_epoch`) at batch level: every rank
    must run the same number of steps or DDP's all-reduce hangs, which per-rank bucketing of a
    DistributedSampler shard cannot promise. Short ranks repeat batches to even the count.
    """

    def __init__(
        self,
        keys: Sequence[object],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.keys = list(keys)
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        groups: dict[object, list[int]] = {}
        for index, key in enumerate(self.keys):
            groups.setdefault(key, []).append(index)
        batches: list[list[int]] = []
        for key in sorted(groups, key=repr):
            members = groups[key]
            if self.shuffle:
                members = [members[i] for i in rng.permutation(len(members))]
            for s in range(0, len(members), self.batch_size):
                chunk = members[s : s + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _shard(self) -> list[list[int]]:
        batches = self._all_batches()
        if not batches:
            return []
        per_rank = math.ceil(len(batches) / self.world_size)
        padded = [batches[i % len(batches)] for i in range(per_rank * self.world_size)]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._shard())

    def __len__(self) -> int:
        return len(self._shard())


def bucket_key(clip: Clip) -> tuple[float, int, bool, bool]:
    """Clips that may share a batch: same frame rate, mesh, and the same optional labels."""
    return (float(clip.fps), int(np.shape(clip.template)[0]), clip.arkit is not None, clip.phones is not None)
