"""Test data for the Blender tests: audio, ground-truth animations, rigs, scene fingerprints."""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

SR = 16000

# A short utterance with its phones ("hello, mama"), for ground-truth motion.
PHONES = [
    ("sil", 0.0, 0.25), ("HH", 0.25, 0.33), ("AH", 0.33, 0.48), ("L", 0.48, 0.56), ("OW", 0.56, 0.8),
    ("sil", 0.8, 1.0), ("M", 1.0, 1.1), ("AA", 1.1, 1.3), ("M", 1.3, 1.4), ("AA", 1.4, 1.7),
    ("sil", 1.7, 2.0),
]  # fmt: skip

TINY_MODEL = dict(
    audio_dim=32, audio_layers=2, audio_heads=2, audio_window=6, mesh_patches=8, patch_dim=16,
    vertex_embed_dim=4, mesh_heads=2, d_model=32, decoder_layers=2, decoder_heads=2, decoder_window=16,
    motion_window=8, align_radius=3, ff_mult=2, consistency_dim=16,
)  # fmt: skip


def write_speechlike_wav(path: Path, seconds: float = 2.0, seed: int = 0) -> Path:
    """Noise bursts at syllable rate: moves a random model, cheap to make, valid 16-bit PCM."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t) * np.sin(2 * np.pi * 0.37 * t + 1.0), 0, None)
    audio = 0.3 * envelope * rng.standard_normal(t.size)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SR)
        handle.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def ground_truth_animation(fps: float = 30.0, seconds: float = 2.0, emotion: str = "happy"):
    """An engine Animation built from the synthetic ground truth (no model needed)."""
    from engine.animation import Animation, Caption
    from engine.data.motion import render_motion
    from engine.face.template import load_template

    motion = render_motion(PHONES, emotion=emotion, fps=fps, duration=seconds)
    offsets = motion.vertices - load_template().vertices[None]
    captions = [Caption(0.25, 0.8, "hello", 0.9, 0.92), Caption(1.0, 1.7, "mama", 0.6, 0.35)]
    return Animation(
        fps=float(fps), offsets=offsets.astype(np.float32), arkit=motion.arkit, captions=captions
    )


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    import torch

    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = DualFace(ModelConfig(**TINY_MODEL))
    # A fresh decoder predicts the rest face; random output heads make the motion non-trivial.
    torch.nn.init.normal_(model.decoder.offset_head.weight, std=0.02)
    torch.nn.init.normal_(model.decoder.arkit_head.weight, std=0.5)
    return save_checkpoint(model, path)


def add_arkit_rig(scene, name: str = "Rig", rename: dict[str, str] | None = None):
    """The DualFace head with the 52 ARKit shapes as shape keys (some renamed to test matching)."""
    from blender_addon.head import add_head
    from engine.arkit import ARKIT_NAMES
    from engine.arkit.basis import arkit_basis

    obj = add_head(scene, name)
    basis = arkit_basis()
    rest = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.shape_keys.reference_key.data.foreach_get("co", rest)
    rename = rename or {}
    for index, arkit_name in enumerate(ARKIT_NAMES):
        block = obj.shape_key_add(name=rename.get(arkit_name, arkit_name), from_mix=False)
        block.data.foreach_set("co", rest + basis[index].ravel())
    return obj


def fingerprint(bpy) -> dict:
    """Everything a take could create or change, to prove a failed request changed nothing."""
    state: dict = {
        "collections": {
            name: sorted(item.name for item in getattr(bpy.data, name))
            for name in (
                "actions",
                "objects",
                "meshes",
                "shape_keys",
                "scenes",
                "sounds",
                "materials",
                "cameras",
            )
        }
    }
    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        strips = [] if editor is None else list(editor.strips_all)
        state[f"scene:{scene.name}"] = (
            scene.frame_start,
            scene.frame_end,
            sorted((m.name, m.frame) for m in scene.timeline_markers),
            sorted((s.name, s.channel, s.frame_final_start, s.mute) for s in strips),
        )
    for obj in bpy.data.objects:
        if obj.type == "MESH" and obj.data.shape_keys is not None:
            key = obj.data.shape_keys
            anim = key.animation_data
            state[f"keys:{obj.name}"] = (
                [(b.name, round(b.value, 6)) for b in key.key_blocks],
                anim.action.name if anim and anim.action else None,
                [t.name for t in anim.nla_tracks] if anim else [],
            )
    return state


def key_coordinates(obj) -> dict[str, np.ndarray]:
    out = {}
    for block in obj.data.shape_keys.key_blocks:
        co = np.empty(len(block.data) * 3, dtype=np.float32)
        block.data.foreach_get("co", co)
        out[block.name] = co
    return out


def evaluated_vertices(bpy, obj, frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).data
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def python_command(script: str) -> list[str]:
    """Run `script` in a fresh process that can import bpy: this interpreter with the bpy module,
    or, under pytest-blender, the Blender executable itself (its bare Python has no bpy)."""
    import bpy

    if bpy.app.binary_path:
        return [
            bpy.app.binary_path,
            "-b",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python-expr",
            script,
        ]
    return [sys.executable, "-c", script]
