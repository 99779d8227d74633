"""Move a synthetic corpus to another machine in one small file: meta and log-mels, no audio or motion.

A 2.5-hour corpus is 2 GB on disk, mostly vertices that the rig renders again bit for bit from each
clip's meta (phones, emotion, style, motion seed), and audio that training only ever reads as log-mels.
The pack holds the meta of every clip, the dataset's own files, and the log-mels of the clips that
training reads, quantised to `step` (0.01 by default: steps of 0.22 dB, far below any augmentation) and
xz-compressed: about 45 MB for 2.5 hours. `unpack` renders the motion again and writes the mels as
``log_mel_npy/``, which the reader hands to training in place of the audio; clips packed without mels
(the test splits) have motion but no audio, so evaluate on the corpus you packed from.

    python -m engine.data.pack pack --data data/corpus_v2 --out corpus.tar.xz
    python -m engine.data.pack unpack corpus.tar.xz --out data/corpus_v2 --workers 16
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import shutil
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.audio.features import N_MELS
from engine.data.layout import (
    ARKIT_DIR,
    DATASET_FILE,
    MEL_DIR,
    META_DIR,
    PARTIAL_SUFFIX,
    SPLITS_FILE,
    TEMPLATES_FILE,
    VERTICES_DIR,
    VIEWS_FILE,
)

PACK_FORMAT = "dualface-corpus-pack-1"
DEFAULT_STEP = 0.01
DEFAULT_SPLITS = ("train", "val")  # what training reads; every fold's train/val view is inside these
_INFO, _MELS, _META = "pack.json", "log_mel.u16", "meta.json"
_CORPUS_FILES = (DATASET_FILE, SPLITS_FILE, VIEWS_FILE, TEMPLATES_FILE)
_RENDER_KEYS = (
    "clip_id",
    "phones",
    "emotion",
    "intensity",
    "style",
    "fps",
    "duration",
    "motion_seed",
    "n_frames",
)


class PackError(ValueError):
    """A corpus that cannot be packed, or a file that is not a whole pack."""


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    tar.addfile(member, io.BytesIO(data))


def pack_corpus(
    data: str | Path, out: str | Path, splits: Sequence[str] = DEFAULT_SPLITS, step: float = DEFAULT_STEP
) -> dict:
    """Write the pack of corpus `data` to `out` (written aside, then renamed); returns its info."""
    from engine.data.readers import open_dataset
    from engine.training.batches import MelCache

    data, out = Path(data), Path(out)
    if not 0.0 < step <= 0.1:
        raise PackError(f"step must be in (0, 0.1], got {step}")
    dataset = open_dataset(data)
    if dataset.kind != "synthetic":
        raise PackError(f"{data} is a {dataset.kind} dataset; only synthetic corpora can be rendered again")
    ids: dict[str, None] = {}  # ordered, without repeats
    for split in splits:
        try:
            ids.update(dict.fromkeys(dataset.ids(split)))
        except KeyError as exc:
            raise PackError(str(exc)) from exc
    metas = {}
    for clip_id in dataset.ids():
        meta = json.loads((data / META_DIR / f"{clip_id}.json").read_text(encoding="utf-8"))
        missing = [key for key in _RENDER_KEYS if key not in meta]
        if missing:
            raise PackError(
                f"clip {clip_id}: its meta lacks {missing}, so its motion cannot be rendered again"
            )
        metas[clip_id] = meta
    cache = MelCache(data / "cache" / "log_mel")
    codes, frames = [], {}
    for clip_id in ids:
        mel = np.asarray(cache.mel(dataset.clip(clip_id)), dtype=np.float32)
        if mel.min() < 0:
            raise PackError(f"clip {clip_id}: negative log-mel values, which the unsigned codes cannot hold")
        code = np.round(mel / step)
        if code.max() >= 2**16:
            raise PackError(f"clip {clip_id}: log-mel {mel.max():.2f} does not fit 16 bits at step {step}")
        codes.append(code.astype("<u2"))
        frames[clip_id] = int(mel.shape[0])
    info = {"format": PACK_FORMAT, "step": step, "splits": list(splits), "mel_frames": frames}
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(partial, "w:xz", preset=6) as tar:
            _add_bytes(tar, _INFO, json.dumps(info).encode())
            for name in _CORPUS_FILES:
                if (data / name).is_file():
                    _add_bytes(tar, name, (data / name).read_bytes())
            _add_bytes(tar, _META, json.dumps(metas, ensure_ascii=False).encode())
            _add_bytes(tar, _MELS, np.concatenate(codes).tobytes() if codes else b"")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return {"clips": len(metas), "clips_with_mels": len(frames), "bytes": out.stat().st_size, "step": step}


def _render(args: tuple[dict, str]) -> None:
    """Render one clip's ARKit weights and vertices from its meta, exactly as the corpus writer did."""
    from engine.data.motion import render_motion
    from engine.data.style import SpeakerStyle

    meta, root = args
    phones = [(p["phone"], float(p["start"]), float(p["end"])) for p in meta["phones"]]
    style = SpeakerStyle(**meta["style"])
    motion = render_motion(
        phones, meta["emotion"], meta["intensity"], style, meta["fps"], meta["duration"], meta["motion_seed"]
    )
    n = motion.arkit.shape[0]
    if n != meta["n_frames"]:
        raise PackError(f"clip {meta['clip_id']}: rendered {n} frames, the meta says {meta['n_frames']}")
    clip_id = meta["clip_id"]
    np.save(Path(root) / VERTICES_DIR / f"{clip_id}.npy", motion.vertices.reshape(n, -1).astype(np.float32))
    if meta.get("arkit"):
        np.save(Path(root) / meta["arkit"], motion.arkit.astype(np.float32))


def unpack_corpus(pack: str | Path, out: str | Path, workers: int = 1) -> dict:
    """Rebuild the corpus of `pack` in `out` (built aside, renamed when whole); returns counts."""
    pack, out = Path(pack), Path(out)
    if out.exists():
        raise PackError(f"{out} already exists; choose another --out or remove it")
    if workers < 1:
        raise PackError(f"workers must be >= 1, got {workers}")
    try:
        with tarfile.open(pack, "r:xz") as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise PackError(f"{pack} is not a whole corpus pack: {exc}") from exc
    try:
        info = json.loads(files[_INFO])
        metas = json.loads(files[_META])
        raw = files[_MELS]
    except (KeyError, json.JSONDecodeError) as exc:
        raise PackError(f"{pack} is not a corpus pack ({exc})") from exc
    if info.get("format") != PACK_FORMAT:
        raise PackError(f"{pack} has format {info.get('format')!r}, expected {PACK_FORMAT!r}")
    frames: dict[str, int] = info["mel_frames"]
    codes = np.frombuffer(raw, dtype="<u2")
    if codes.size != N_MELS * sum(frames.values()):
        raise PackError(
            f"{pack}: {codes.size} mel values for {sum(frames.values())} frames; the pack is damaged"
        )
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for sub in (VERTICES_DIR, ARKIT_DIR, META_DIR, MEL_DIR):
            (partial / sub).mkdir(parents=True)
        for name in _CORPUS_FILES:
            if name in files:
                (partial / name).write_bytes(files[name])
        for clip_id, meta in metas.items():
            text = json.dumps(meta, ensure_ascii=False, indent=1)
            (partial / META_DIR / f"{clip_id}.json").write_text(text, encoding="utf-8")
        mels = codes.reshape(-1, N_MELS)
        start = 0
        for clip_id, n in frames.items():
            mel = mels[start : start + n].astype(np.float32) * np.float32(info["step"])
            np.save(partial / MEL_DIR / f"{clip_id}.npy", mel)
            start += n
        jobs = [(meta, str(partial)) for meta in metas.values()]
        if workers == 1:
            for job in jobs:
                _render(job)
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_render, jobs, chunksize=8):
                    pass
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {"clips": len(metas), "clips_with_mels": len(frames)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.data.pack", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack", help="corpus folder -> one .tar.xz of meta and quantised log-mels")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--splits", default=",".join(DEFAULT_SPLITS), help="splits whose mels travel (train,val)")
    p.add_argument("--step", type=float, default=DEFAULT_STEP, help="log-mel quantisation step (0.01)")
    u = verbs.add_parser("unpack", help=".tar.xz -> corpus folder, motion rendered again")
    u.add_argument("pack", type=Path)
    u.add_argument("--out", required=True, type=Path)
    u.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    from engine.data.readers import DatasetError

    try:
        if args.verb == "pack":
            splits = [s for s in args.splits.split(",") if s]
            result = pack_corpus(args.data, args.out, splits, args.step)
        else:
            result = unpack_corpus(args.pack, args.out, args.workers)
    except (PackError, DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
