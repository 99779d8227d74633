"""The preview movie shows the face: framing, occlusion, the empty-scene option and the pixels."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from blender_helpers import write_speechlike_wav

pytestmark = pytest.mark.blender

SIZE = (160, 120)


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=1.0)


def _world_box(obj):
    from mathutils import Vector

    return [obj.matrix_world @ Vector(c) for c in obj.bound_box]


def _review_camera(bpy, scene_name: str = "Scene"):
    review = next(s for s in bpy.data.scenes if s.get("dualface_review_of") == scene_name)
    view = next(s for s in review.sequence_editor.strips_all if s.type == "SCENE")
    return view.scene_camera or view.scene.camera


def _projected_box(bpy, scene, camera, obj):
    """The object's bounds in the camera frame (0..1), projected independently of DualFace's code."""
    from bpy_extras.object_utils import world_to_camera_view

    scene.view_layers[0].update()
    points = np.array([tuple(world_to_camera_view(scene, camera, c)) for c in _world_box(obj)])
    assert (points[:, 2] > 0).all(), "part of the face is behind the camera"
    return points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()


def _frame_rgb(movie, seconds: float, size=SIZE) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(seconds), "-i", str(movie), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(size[1], size[0], 3).astype(float)


def _probe(movie) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json",
         str(movie)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(result.stdout)


@pytest.mark.slow
def test_empty_scene_movie_frames_the_face_with_audio(scene, audio, engine_weights, tmp_path):
    import bpy

    from blender_addon import headless

    bpy.ops.wm.read_homefile()  # the startup cube, camera and light: --empty-scene must drop them
    movie, saved = tmp_path / "demo.mp4", tmp_path / "demo.blend"
    code = headless.main(
        ["animate", "--add-head", "--empty-scene", "--audio", str(audio), "--captions", "--render",
         str(movie), "--resolution", f"{SIZE[0]}x{SIZE[1]}", "--save", str(saved)]
    )  # fmt: skip
    assert code == 0
    probe = _probe(movie)
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}
    assert float(probe["format"]["duration"]) == pytest.approx(1.0, abs=0.1)

    bpy.ops.wm.open_mainfile(filepath=str(saved))
    scene = bpy.data.scenes["Scene"]
    assert not any(o.name in {"Cube", "Camera", "Light"} for o in bpy.data.objects)
    actions = [a.name for a in bpy.data.actions]  # the take, its parts (teeth, tongue) and its layers
    assert "DF_hello_001" in actions and all(name.startswith("DF_hello_001") for name in actions)
    head = bpy.data.objects["DualFace Head"]
    camera = _review_camera(bpy)
    assert scene.camera == camera  # the empty scene had none: the portrait camera is its camera
    left, bottom, right, top = _projected_box(bpy, scene, camera, head)
    assert 0.0 <= left < right <= 1.0 and 0.0 <= bottom < top <= 1.0
    assert 0.55 <= top - bottom <= 0.85  # a close-up, with room left for captions below
    assert bottom > 0.15  # the chin stays clear of the caption band

    # The pixels: skin where the face projects, backdrop in the corners.
    frame = _frame_rgb(movie, 0.5)
    h, w = frame.shape[:2]
    face = frame[int(h * (1 - top)) : int(h * (1 - bottom)), int(w * left) : int(w * right)]
    centre = face[face.shape[0] // 3 : 2 * face.shape[0] // 3, face.shape[1] // 3 : 2 * face.shape[1] // 3]
    corner = frame[h // 4 : h // 2, : w // 10]
    red, blue = centre[..., 0].mean(), centre[..., 2].mean()
    assert red > blue + 20, f"the face centre is not skin coloured (mean RGB {centre.mean((0, 1))})"
    assert centre.mean() > corner.mean() + 40, "the face does not stand out from the backdrop"


@pytest.mark.slow
def test_head_added_to_a_busy_scene_gets_its_own_camera_and_the_artists_objects_stay(
    scene, audio, engine_weights, tmp_path
):
    import bpy

    from blender_addon import headless

    bpy.ops.wm.read_homefile()  # the startup cube at the origin would hide a head added there
    artist = {
        o.name: (tuple(o.matrix_world.col[3]), tuple(o.rotation_euler), o.data.name) for o in bpy.data.objects
    }
    artist_camera = bpy.context.scene.camera
    movie = tmp_path / "busy.mp4"
    code = headless.main(
        ["animate", "--add-head", "--audio", str(audio), "--render", str(movie),
         "--resolution", f"{SIZE[0]}x{SIZE[1]}"]
    )  # fmt: skip
    assert code == 0
    scene = bpy.data.scenes["Scene"]
    assert scene.camera == artist_camera  # the review gets its own camera; the scene keeps its own
    for name, state in artist.items():
        obj = bpy.data.objects[name]
        assert (tuple(obj.matrix_world.col[3]), tuple(obj.rotation_euler), obj.data.name) == state
    head = bpy.data.objects["DualFace Head"]
    camera = _review_camera(bpy)
    assert camera != artist_camera
    left, bottom, right, top = _projected_box(bpy, scene, camera, head)
    assert 0.0 <= left < right <= 1.0 and 0.55 <= top - bottom <= 0.85
    # Nothing of the artist's stands between the portrait camera and the face.
    from mathutils import Vector

    origin = camera.matrix_world.translation
    corners = _world_box(head)
    target = sum(corners, Vector()) / len(corners)
    hit, _, _, _, obj, _ = scene.ray_cast(
        scene.view_layers[0].depsgraph, origin, (target - origin).normalized()
    )
    assert hit and obj.original.name == head.name
    frame = _frame_rgb(movie, 0.5)
    middle = frame[SIZE[1] // 3 : SIZE[1] // 2, SIZE[0] // 3 : 2 * SIZE[0] // 3]
    assert middle[..., 0].mean() > middle[..., 2].mean() + 20  # skin, not the cube's grey


def test_camera_check_rejects_a_hidden_or_tiny_face_and_accepts_a_portrait(scene):
    import bpy

    from blender_addon import review
    from blender_addon.head import add_head, free_location

    head = add_head(scene)
    portrait = review.portrait_camera(scene, head, (640, 480))
    assert review.camera_sees(scene, portrait, head, (640, 480))
    # A portrait framed for landscape still holds the whole face on a tall frame.
    tall = review.portrait_camera(scene, head, (480, 640))
    assert review.camera_sees(scene, tall, head, (480, 640))

    far = bpy.data.objects.new("Far", bpy.data.cameras.new("Far"))
    scene.collection.objects.link(far)
    far.location = (0.0, -30.0, 0.0)
    far.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.view_layers[0].update()
    assert not review.camera_sees(scene, far, head, (640, 480))  # in frame, but a speck

    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 0.0))  # swallows the face
    assert not review.camera_sees(scene, portrait, head, (640, 480))
    assert free_location(scene)[0] >= 1.5  # a new head would go beside the cube, not inside it


@pytest.mark.parametrize("batch", [False, True])
def test_empty_scene_without_a_head_to_add_is_refused_and_changes_nothing(
    scene, audio, tmp_path, capsys, batch
):
    import bpy

    from blender_addon import headless

    bpy.ops.wm.read_homefile()
    before = sorted(o.name for o in bpy.data.objects)
    if batch:
        jobs = tmp_path / "jobs.json"
        jobs.write_text(
            json.dumps([{"audio": str(audio), "add_head": True}, {"audio": str(audio), "object": "Cube"}])
        )
        argv = ["animate", "--batch", str(jobs), "--empty-scene"]
    else:
        argv = ["animate", "--audio", str(audio), "--object", "Cube", "--empty-scene"]
    assert headless.main(argv) == 2
    message = capsys.readouterr().err
    assert "--empty-scene" in message and ("add --add-head" in message or "job 2" in message)
    assert sorted(o.name for o in bpy.data.objects) == before  # the startup file was not replaced


def test_overlapping_captions_follow_each_other_and_only_simultaneous_ones_stack(scene, audio):
    from blender_addon import review

    captions = [  # seconds at 30 fps from frame 1: the lip reader's spans may overlap
        {"start": 0.0, "end": 0.5, "text": "one", "sync": 0.9},
        {"start": 0.4, "end": 0.8, "text": "two", "sync": 0.2},
        {"start": 0.4, "end": 0.6, "text": "also", "sync": 0.6},
        {"start": 0.9, "end": 0.9, "text": "blink", "sync": 0.6},
        {"start": 0.95, "end": 1.0, "text": " ", "sync": 0.6},
    ]
    meta = {"start_frame": 1, "frame_end": 30, "fps": 30.0, "audio": str(audio), "captions": captions}
    view = review.build_review(scene, meta, captions=True)
    strips = {
        s.text.split()[0]: s for s in view.sequence_editor.strips_all if s.get("dualface_role") == "caption"
    }
    assert sorted(strips) == ["also", "blink", "one", "two"]  # blank captions get no strip
    span = {k: (s.frame_final_start, s.frame_final_end, s.channel) for k, s in strips.items()}
    assert span["one"] == (1, 13, 3)  # cut where "two" begins instead of running under it
    assert span["two"][:2] == (13, 25) and span["also"][:2] == (13, 19)
    assert (span["two"][2], span["also"][2]) == (3, 4)  # the two that start together stack
    assert span["blink"][1] - span["blink"][0] == 1  # a zero-length caption still shows for a frame
    assert strips["also"].location[1] > strips["two"].location[1]  # a second line, above the first
