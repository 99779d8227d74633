"""The last step of every take, whatever computed the motion: lips closed on p/b/m, rest in pauses,
ARKit from the vertices.

Two outputs leave the engine, vertex offsets (the template, and any mesh retargeted from it) and
52 ARKit weights (every ARKit-ready character). They must show the same mouth: the decoder's own
ARKit head is a separate regression that smooths closures away, so the weights are refitted to the
final vertex motion, contacts first (engine.arkit.solve), starting from the head's guess.

Where the closure detector hears a p, b or m, the mouth is moved to the rig's closed pose
(engine.closure.close): a voice the model never heard should still close the lips there.

Only the per-frame weights need the recording (its noise floor, the detector's context); given them,
every frame is finished on its own, so a long take (engine.numpy_runtime.long_take) finishes chunk by
chunk.
"""

from __future__ import annotations

import numpy as np

from engine.audio.io import MODEL_SAMPLE_RATE
from engine.face.template import N_VERTICES
from engine.inference.rest import blend_to_rest, rest_weights, rig_rest_offsets
from engine.inference.rig_poses import rig_pose_offsets


def finish_motion(
    offsets: np.ndarray,
    arkit: np.ndarray,
    audio: np.ndarray,
    fps: float,
    cond: np.ndarray,
    style: np.ndarray,
    detector=None,
) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, arkit) with the lips closed on p/b/m, the face at rest in the recording's pauses
    and ARKit matching the vertices.

    `audio` is the take at 16 kHz, `cond` the per-frame emotion conditioning [T, E] and `style` the
    speaker style vector the model was given (the rest and closed poses follow both). `detector` is
    the engine.closure.detector.ClosureDetector that finds the closures; None skips that step."""
    offsets = np.asarray(offsets, dtype=np.float32)
    if not finishes(offsets):
        return offsets, np.clip(np.asarray(arkit, dtype=np.float32), 0.0, 1.0)
    from engine.closure.close import recording_closure_weights

    n = len(offsets)
    rest = rest_weights(audio, MODEL_SAMPLE_RATE, fps, n)
    closure = recording_closure_weights(lambda a, b: audio[a:b], len(audio), fps, n, detector)
    return finish_frames(offsets, arkit, rest, closure, fps, cond, style)


def finishes(offsets: np.ndarray) -> bool:
    """Whether motion is finished: template motion only; another mesh (VOCASET, BIWI) has no rig to
    define its rest or ARKit."""
    return offsets.ndim == 3 and offsets.shape[1] == N_VERTICES and len(offsets) > 0


def finish_frames(
    offsets: np.ndarray,
    arkit: np.ndarray,
    rest: np.ndarray,
    closure: np.ndarray,
    fps: float,
    cond: np.ndarray,
    style: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`finish_motion` of any run of template frames, given their rest and closure weights [T]
    (engine.inference.rest.rest_weights, engine.closure.close.recording_closure_weights of the
    whole take) and conditioning [T, E]."""
    from engine.closure.close import close_lips

    offsets = np.asarray(offsets, dtype=np.float32)
    arkit = np.clip(np.asarray(arkit, dtype=np.float32), 0.0, 1.0)
    cond = np.asarray(cond, dtype=np.float32)
    offsets = close_lips(
        offsets, closure, lambda frames: rig_pose_offsets("closed", style, fps, cond[frames])
    )
    offsets = blend_to_rest(offsets, lambda frames: rig_rest_offsets(style, fps, cond[frames]), rest)
    from engine.arkit.solve import arkit_from_template_motion

    return offsets, arkit_from_template_motion(offsets, start=arkit)
