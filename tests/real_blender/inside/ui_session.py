"""The DualFace panel used for real: run by a Blender with its UI (under Xvfb), not in background mode.

    xvfb-run blender --python ui_session.py -- SPEECH LONG_SPEECH

A window timer walks through the scenario below while Blender's event loop runs, so the modal
Generate operator, its timer and progress bar, Cancel, Esc (a real key press sent with xdotool),
the viewport caption overlay, Open Review Scene and undo all behave as they do for an artist.
Screenshots (ImageMagick's `import`, the X server's pixels) go to $DUALFACE_RUN_DIR; the findings
go to $DUALFACE_REPORT as JSON. A watchdog ends Blender if the scenario runs over its time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import bpy
import numpy as np

ADDON = "bl_ext.user_default.dualface"
SPEECH, LONG_SPEECH = sys.argv[sys.argv.index("--") + 1 :][:2]
OUT = Path(os.environ["DUALFACE_RUN_DIR"])
REPORT: dict = {"steps": [], "progress": [], "screenshots": {}}
DEADLINE_S = 170


def finish(code: int) -> None:
    Path(os.environ["DUALFACE_REPORT"]).write_text(json.dumps(REPORT, indent=1))
    sys.stdout.flush()
    os._exit(code)  # no save prompts, no waiting on a busy worker


def watchdog() -> None:
    time.sleep(DEADLINE_S)
    REPORT["error"] = f"timed out after {DEADLINE_S} s during: {REPORT['steps'][-1:]}"
    finish(3)


def addon_module(name: str):
    return sys.modules[f"{ADDON}.{name}"]


# --- where things are on screen ------------------------------------------------------------------


def view3d():
    window = bpy.context.window_manager.windows[0]
    area = max((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    regions = {r.type: r for r in area.regions}
    return window, area, regions["WINDOW"], regions["UI"]


def override(region_type: str = "WINDOW"):
    window, area, main, sidebar = view3d()
    region = main if region_type == "WINDOW" else sidebar
    return bpy.context.temp_override(window=window, area=area, region=region, screen=window.screen)


def blender_window_id() -> str:
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", "Blender"],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout.split()
    if not found:
        raise RuntimeError("xdotool finds no Blender window")
    return found[0]


def screenshot(name: str, region=None) -> Path:
    """The Blender window from the X server, cropped to REGION when given."""
    path = OUT / f"{name}.png"
    subprocess.run(["import", "-window", blender_window_id(), str(path)], check=True, timeout=30)
    if region is not None:
        window = bpy.context.window_manager.windows[0]
        top = window.height - (region.y + region.height)
        crop = f"{region.width}x{region.height}+{region.x}+{top}"
        subprocess.run(["convert", str(path), "-crop", crop, "+repage", str(path)], check=True, timeout=30)
    REPORT["screenshots"][name] = str(path)
    return path


def pixels(path: Path) -> np.ndarray:
    """[H, W, 3] floats of a PNG, top row first."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        flat = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(flat)
    finally:
        bpy.data.images.remove(image)
    return flat.reshape(height, width, 4)[::-1, :, :3]


# --- the scene -----------------------------------------------------------------------------------


def fingerprint() -> dict:
    """Everything a take could write: actions, shape keys, markers, scenes, strips, sounds."""
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    return {
        "actions": sorted(a.name for a in bpy.data.actions),
        "keys": {
            o.name: [k.name for k in o.data.shape_keys.key_blocks] if o.data.shape_keys else []
            for o in meshes
        },
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "markers": {s.name: len(s.timeline_markers) for s in bpy.data.scenes},
        "strips": {
            s.name: len(s.sequence_editor.sequences_all) if s.sequence_editor else 0 for s in bpy.data.scenes
        },
        "sounds": len(bpy.data.sounds),
    }


def job_state() -> dict:
    job = bpy.context.window_manager.dualface_job
    return {"running": bool(job.running), "progress": float(job.progress), "status": str(job.status)}


def step(name: str) -> None:
    REPORT["steps"].append(name)
    print("DUALFACE_UI_STEP", name, flush=True)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        yield 0.1


def generate_and_wait(audio: str, timeout: float):
    """Start Generate as the panel's button does (INVOKE: the modal, threaded path) and sample the
    progress the panel shows until the job ends."""
    bpy.context.scene.dualface.audio_path = audio
    with override("UI"):
        outcome = bpy.ops.dualface.generate("INVOKE_DEFAULT")
    REPORT.setdefault("invoke", []).append(sorted(outcome))
    yield from wait_until(lambda: job_state()["running"], 10, "the job start")
    deadline = time.monotonic() + timeout
    while job_state()["running"]:
        REPORT["progress"].append(job_state())
        if time.monotonic() > deadline:
            raise TimeoutError(f"the take did not finish within {timeout} s")
        yield 0.1


def wait_for_end(key: str, timeout: float):
    """Until the job stops, keeping the statuses the panel showed on the way (under REPORT[cancel][key])."""
    seen = REPORT["cancel"].setdefault(key, [])
    deadline = time.monotonic() + timeout
    while job_state()["running"]:
        if not seen or seen[-1] != job_state()["status"]:
            seen.append(job_state()["status"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"the job did not stop within {timeout} s ({key})")
        yield 0.05


def take_of(name: str):
    found = addon_module("takes").active_take(bpy.data.objects.get(name))
    return found


def scenario():
    window, area, main, sidebar = view3d()
    step("setup")
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    with override():
        bpy.ops.dualface.add_head()
    head = bpy.context.view_layer.objects.active
    REPORT["head"] = head.name
    settings = bpy.context.scene.dualface
    settings.captions = True
    settings.show_overlay = True
    area.spaces.active.show_region_ui = True
    area.spaces.active.overlay.show_relationship_lines = False  # parts -> head lines clutter the pictures
    yield 0.5
    window, area, main, sidebar = view3d()
    try:
        sidebar.active_panel_category = "DualFace"
    except (AttributeError, TypeError) as error:
        REPORT["category_error"] = str(error)
    with override():
        bpy.ops.view3d.view_selected()
        bpy.ops.view3d.view_axis(type="FRONT", align_active=False)
        bpy.ops.view3d.view_selected()
    area.tag_redraw()
    yield 1.0
    REPORT["category"] = getattr(view3d()[3], "active_panel_category", "")
    with override():
        bpy.ops.ed.undo_push(message="test set-up")  # the state one undo after the take must restore
    before_generate = fingerprint()
    screenshot("panel_before", view3d()[3])

    step("generate")
    before = fingerprint()
    started = time.monotonic()
    shot_progress = False
    for delay in generate_and_wait(SPEECH, 120):
        if not shot_progress and job_state()["progress"] > 0:
            screenshot("panel_progress", view3d()[3])
            shot_progress = True
        yield delay
    REPORT["generate_seconds"] = time.monotonic() - started
    found = take_of(head.name)
    if found is None:
        raise RuntimeError("Generate ended without a take on the head")
    action, meta = found
    REPORT["take"] = {
        "action": action.name,
        "captions": meta.get("captions", []),
        "fcurves": len(action.fcurves),
    }
    REPORT["after_take"] = fingerprint()
    REPORT["new_actions"] = sorted(set(REPORT["after_take"]["actions"]) - set(before["actions"]))
    yield 0.5
    screenshot("panel_after", view3d()[3])

    step("overlay")
    captions = [c for c in meta.get("captions", []) if c["text"].strip()]
    REPORT["overlay"] = {"captions": len(captions)}
    if captions:
        first = captions[0]
        frame = meta["start_frame"] + (first["start"] + first["end"]) / 2 * meta["fps"]
        bpy.context.scene.frame_set(int(round(frame)))
        view3d()[1].tag_redraw()
        yield 0.8
        with_overlay = pixels(screenshot("viewport_caption", view3d()[2]))
        bpy.context.scene.dualface.show_overlay = False
        view3d()[1].tag_redraw()
        yield 0.8
        without = pixels(screenshot("viewport_plain", view3d()[2]))
        bpy.context.scene.dualface.show_overlay = True
        _, _, main, sidebar = view3d()
        viewport = slice(0, sidebar.x - main.x)  # the sidebar (its checkbox changed) overlaps the viewport
        difference = np.abs(with_overlay[:, viewport] - without[:, viewport]).max(axis=2) > 0.1
        bottom = int(with_overlay.shape[0] * 0.75)  # the caption sits near the bottom
        changed, elsewhere = difference[bottom:], difference[:bottom]
        REPORT["overlay"].update(
            text=first["text"],
            frame=int(round(frame)),
            changed=int(changed.sum()),
            elsewhere=int(elsewhere.sum()),
        )

    step("review")
    main_scene = bpy.context.window.scene if bpy.context.window else window.scene
    with override("UI"):
        bpy.ops.dualface.open_review()
    yield 1.0
    REPORT["review_scene"] = view3d()[0].scene.name
    review_scene = view3d()[0].scene
    REPORT["review_strips"] = [s.type for s in review_scene.sequence_editor.sequences_all]
    area = view3d()[1]
    area.type = "SEQUENCE_EDITOR"  # what the review scene is for: its preview with captions
    area.spaces.active.view_type = "SEQUENCER_PREVIEW"
    review_scene.frame_set(REPORT["overlay"].get("frame", 24))
    yield 1.0
    screenshot("review_scene")
    for area in bpy.context.window_manager.windows[0].screen.areas:
        if area.type == "SEQUENCE_EDITOR":
            area.type = "VIEW_3D"
    yield 0.5
    view3d()[0].scene = main_scene
    yield 0.5

    step("cancel_button")
    before = fingerprint()
    REPORT["cancel"] = {}
    bpy.context.scene.dualface.audio_path = LONG_SPEECH
    with override("UI"):
        bpy.ops.dualface.generate("INVOKE_DEFAULT")
    yield from wait_until(lambda: job_state()["running"], 10, "the job start")
    yield 0.5
    REPORT["cancel"]["button_running"] = job_state()
    with override("UI"):
        bpy.ops.dualface.cancel()
    pressed = time.monotonic()
    yield from wait_for_end("button_statuses", 60)
    REPORT["cancel"]["button_seconds"] = time.monotonic() - pressed
    REPORT["cancel"]["button_unchanged"] = fingerprint() == before

    step("cancel_esc")
    before = fingerprint()
    with override("UI"):
        bpy.ops.dualface.generate("INVOKE_DEFAULT")
    yield from wait_until(lambda: job_state()["running"], 10, "the job start")
    yield 0.5
    REPORT["cancel"]["esc_running"] = job_state()
    window, area, main, sidebar = view3d()
    x, y = main.x + main.width // 2, window.height - (main.y + main.height // 2)
    wid = blender_window_id()
    subprocess.run(["xdotool", "mousemove", "--window", wid, str(x), str(y)], check=True, timeout=20)
    subprocess.run(["xdotool", "key", "--clearmodifiers", "Escape"], check=True, timeout=20)
    pressed = time.monotonic()
    yield from wait_for_end("esc_statuses", 60)
    REPORT["cancel"]["esc_unchanged"] = fingerprint() == before
    REPORT["cancel"]["esc_seconds"] = time.monotonic() - pressed

    step("undo")
    REPORT["undo"] = {"take_before": take_of(head.name) is not None}
    with override():
        bpy.ops.ed.undo()
    yield 0.5
    REPORT["undo"]["take_after"] = take_of(REPORT["head"]) is not None
    REPORT["undo"]["after"] = fingerprint()
    REPORT["undo"]["before_generate"] = before_generate
    step("done")


def main() -> None:
    threading.Thread(target=watchdog, daemon=True).start()
    steps = scenario()

    def tick():
        try:
            return next(steps)
        except StopIteration:
            finish(0)
        except Exception:  # noqa: BLE001 - every failure goes to the report
            REPORT["error"] = traceback.format_exc()
            finish(1)
        return None

    bpy.app.timers.register(tick, first_interval=1.0)


main()
