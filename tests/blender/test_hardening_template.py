"""A 468-vertex mesh is the template only when it has the template's shape."""

from __future__ import annotations

import numpy as np
import pytest
from blender_helpers import evaluated_vertices, write_speechlike_wav

pytestmark = [pytest.mark.blender, pytest.mark.timeout(600)]


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=1.0)


def _relative_motion(bpy, obj) -> float:
    """Largest vertex displacement over the take, as a fraction of the mesh's size."""
    rest = evaluated_vertices(bpy, obj, 0)
    size = float(np.ptp(rest, axis=0).max())
    moved = max(float(np.abs(evaluated_vertices(bpy, obj, f) - rest).max()) for f in range(1, 31, 3))
    return moved / size


def _scaled_copy(bpy, scene, head, factor: float, name: str):
    mesh = head.data.copy()  # keeps the Basis key of add_head
    for vertex in mesh.vertices:
        vertex.co *= factor
    for block in mesh.shape_keys.key_blocks if mesh.shape_keys else ():
        for point in block.data:
            point.co *= factor
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def test_a_1000x_scaled_template_moves_like_the_template(scene, audio, engine_weights):
    import bpy

    from blender_addon import headless
    from blender_addon.head import add_head

    head = add_head(scene)
    big = _scaled_copy(bpy, scene, head, 1000.0, "Big Face")
    scene.frame_start = 1
    assert (
        headless.main(
            ["animate", "--object", head.name, "--audio", str(audio), "--mode", "vertex", "--layers", "none"]
        )
        == 0
    )
    assert (
        headless.main(
            ["animate", "--object", big.name, "--audio", str(audio), "--mode", "vertex", "--layers", "none"]
        )
        == 0
    )
    normal, scaled = _relative_motion(bpy, head), _relative_motion(bpy, big)
    assert normal > 0
    assert 0.2 < scaled / normal < 5.0, f"relative motion {scaled:.2e} vs the template's {normal:.2e}"


def test_a_template_with_nan_vertices_is_refused_with_the_reason(scene, audio, engine_weights, capsys):
    import bpy

    from blender_addon import headless
    from blender_addon.head import add_head

    head = add_head(scene)
    head.data.vertices[10].co = (float("nan"), 0.0, 0.0)
    code = headless.main(["animate", "--object", head.name, "--audio", str(audio), "--mode", "vertex"])
    assert code == 1 and "NaN" in capsys.readouterr().err
    assert list(bpy.data.actions) == []
