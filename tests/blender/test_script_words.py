"""Word captions of a scripted take: every word in its own sync colour, red to green, in the
review scene, its render and the viewport overlay's layout; audio-only takes keep whole lines."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from blender_helpers import fingerprint, ground_truth_animation, write_speechlike_wav

from blender_addon.core.captions_style import GOOD_SYNC, sync_colour
from blender_addon.core.word_captions import caption_words, colour_runs, overlay_texts, word_rows

ASSETS = Path(__file__).resolve().parents[2] / "engine" / "assets"
SAMPLE, SCRIPT = ASSETS / "sample_speech.wav", ASSETS / "sample_speech.script.txt"

# A scripted line with known scores: red, yellow and green words, same-coloured neighbours.
WORDS = [
    ("Peter", 0.95), ("picked", 0.2), ("a", 0.9), ("peck", 0.6), ("of", 0.7), ("pickled", 0.92),
    ("peppers", 0.3), ("while", 0.88), ("Bob", 0.9), ("met", 0.99), ("my", 0.1), ("mom", 0.93),
]  # fmt: skip


def scripted_caption(start: float = 0.1, step: float = 0.12) -> dict:
    words = [
        {"text": t, "start": start + i * step, "end": start + (i + 0.8) * step, "confidence": 0.9, "sync": s}
        for i, (t, s) in enumerate(WORDS)
    ]
    text = " ".join(t for t, _ in WORDS)
    return {"start": start, "end": start + len(WORDS) * step, "text": text, "sync": 0.7, "words": words}


def per_char(text: str) -> float:
    return 10.0 * len(text)  # a monospace measure: 10 px per character


# -- the layout, without Blender ------------------------------------------------------------------


def test_overlay_lays_the_words_out_left_to_right_in_their_own_colours():
    meta = {"start_frame": 1, "fps": 30.0, "captions": [scripted_caption()]}
    texts = overlay_texts(meta, 1 + 6, per_char, region_width=2000, font_size=20)  # t = 0.2 s
    assert [t.text for t in texts] == [t for t, _ in WORDS]  # the whole line fits: one row
    assert [t.colour for t in texts] == [sync_colour(s) for _, s in WORDS]
    for before, after in zip(texts, texts[1:]):
        assert after.x == pytest.approx(before.x + per_char(before.text + " "))  # one space apart
    assert {t.y for t in texts} == {30.0}  # one baseline, 1.5 font sizes up
    line = per_char(" ".join(t for t, _ in WORDS))
    assert texts[0].x == pytest.approx((2000 - line) / 2)  # centred
    red, green = texts[1].colour, texts[0].colour  # "picked" 0.2, "Peter" 0.95
    assert red[0] > red[1] and green[1] > green[0]


def test_a_line_wider_than_the_view_pages_into_rows_by_time():
    caption = scripted_caption()
    rows = word_rows(caption, per_char, max_width=200)
    assert " ".join(r.text for r in rows).split() == [t for t, _ in WORDS]
    assert all(r.width <= 200 for r in rows) and len(rows) > 2
    assert rows[0].start == caption["start"] and rows[-1].end == caption["end"]
    for row, following in zip(rows, rows[1:]):
        assert row.end == following.start == following.words[0].start  # a row shows from its first word
    meta = {"start_frame": 1, "fps": 100.0, "captions": [caption]}
    for row in rows:
        middle = 1 + 100 * (row.start + row.end) / 2
        drawn = overlay_texts(meta, middle, per_char, region_width=200 / 0.9, font_size=20)
        assert [t.text for t in drawn] == [w.text for w in row.words]


def test_neighbouring_words_of_one_colour_share_a_run():
    (row,) = word_rows(scripted_caption(), per_char, max_width=10_000)
    runs = colour_runs(row)
    assert " ".join(r.text for r in runs) == row.text
    assert min(0.88, 0.9, 0.99) >= GOOD_SYNC and "while Bob met" in [r.text for r in runs]  # all green
    for run in runs:
        assert all(word.colour == run.colour for word in run.words)
        assert per_char(run.prefix) == run.words[0].x  # the run starts where its first word does
    assert all(a.colour != b.colour for a, b in zip(runs, runs[1:]))


def test_audio_only_captions_keep_the_whole_line_with_its_score():
    meta = {
        "start_frame": 1,
        "fps": 30.0,
        "captions": [{"start": 0.0, "end": 1.0, "text": "ah mm", "sync": 0.4}],
    }
    (text,) = overlay_texts(meta, 10, per_char, region_width=1000, font_size=20)
    assert text.text == "ah mm  [40%]" and text.colour == sync_colour(0.4)
    assert caption_words({"words": [{"text": "x"}]}) == []  # malformed words: shown as a line
    assert overlay_texts(meta, 40, per_char, 1000, 20) == []  # after the caption


# -- real Blender ---------------------------------------------------------------------------------


def _runs(review_scene) -> list:
    from blender_addon import review

    strips = [
        s for s in review_scene.sequence_editor.strips_all if s.get(review.ROLE_KEY) == review.WORDS_ROLE
    ]
    return sorted(strips, key=lambda s: (s.frame_final_start, s.location[0]))


def _still(bpy, source, review_scene, frame: int, path: Path):
    """Render one frame of the review scene with the preview look, as the movie is rendered
    (RGBA rows bottom-up, 0..1)."""
    import numpy as np

    from blender_addon import review

    settings = review_scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    review_scene.render.filepath = str(path)
    review_scene.frame_set(frame)
    size = (review_scene.render.resolution_x, review_scene.render.resolution_y)
    with review.preview_look(source, size), bpy.context.temp_override(scene=review_scene):
        bpy.ops.render.render(write_still=True, scene=review_scene.name)
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:], dtype=np.float32).reshape(image.size[1], image.size[0], 4)
    bpy.data.images.remove(image)
    return pixels


def _near(pixels, colour, tolerance: float = 0.12):
    import numpy as np

    return np.all(np.abs(pixels[..., :3] - np.asarray(colour[:3], dtype=np.float32)) < tolerance, axis=-1)


@pytest.mark.blender
def test_headless_scripted_take_shows_each_word_in_its_sync_colour(scene, tmp_path, capsys):
    import bpy

    from blender_addon import headless, review, takes

    movie, saved = tmp_path / "take.mp4", tmp_path / "take.blend"
    code = headless.main(
        ["animate", "--add-head", "--audio", str(SAMPLE), "--text-file", str(SCRIPT), "--captions",
         "--render", str(movie), "--resolution", "192x108", "--save", str(saved), "--device", "cpu"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert movie.stat().st_size > 0
    script_words = re.findall(r"[\w']+", SCRIPT.read_text(encoding="utf-8"))
    meta = takes.take_metadata(next(a for a in bpy.data.actions if a.name.startswith("DF_sample")))
    words = [w for c in meta["captions"] for w in c["words"]]  # the take stores every word
    assert [w["text"] for w in words] == script_words

    view = review.review_scene_for(bpy.context.scene, create=False)
    runs = _runs(view)
    assert " ".join(r.text for r in runs).split() == script_words  # the render spells the script
    queue = iter(words)
    for run in runs:  # each word in the colour of its own score
        mine = [next(queue) for _ in run.text.split()]
        assert list(run[review.SYNC_KEY]) == pytest.approx([w["sync"] for w in mine])
        assert all(tuple(run.color) == pytest.approx(sync_colour(w["sync"])) for w in mine)
    assert {r.font_size for r in runs} == {8}  # laid out again for the movie's 192x108
    measure = review._word_measure(view)
    assert all(0.0 <= r.location[0] and r.location[0] + measure(r.text) / 192 <= 1.0 for r in runs)

    # A still of the first row at 640x360 (laid out again on the way): its words' colours are on screen.
    view.render.resolution_x, view.render.resolution_y = 640, 360
    review.fit_captions(view)
    first = _runs(view)[0]
    pixels = _still(bpy, bpy.context.scene, view, first.frame_final_start + 1, tmp_path / "still.png")
    band = pixels[: int(360 * 0.2)]  # the bottom fifth: the caption row
    shown = {tuple(r.color) for r in _runs(view) if r.frame_final_start == first.frame_final_start}
    assert all(_near(band, colour).sum() > 20 for colour in shown)

    # Saved and opened again, the overlay still draws the line word by word.
    bpy.ops.wm.open_mainfile(filepath=str(saved))
    head = next(o for o in bpy.data.objects if o.type == "MESH" and takes.active_take(o))
    reloaded = takes.active_take(head)[1]
    caption = reloaded["captions"][0]
    frame = reloaded["start_frame"] + round(caption["words"][0]["start"] * reloaded["fps"]) + 1
    drawn = overlay_texts(reloaded, frame, per_char, region_width=10_000, font_size=20)
    assert [d.text for d in drawn] == [w["text"] for w in caption["words"]]
    assert [d.colour for d in drawn] == [sync_colour(w["sync"]) for w in caption["words"]]


@pytest.fixture
def scripted_take(scene, tmp_path):
    """A take written with a scripted caption line of known word scores (no engine needed)."""
    import bpy

    from blender_addon import takes, validation
    from blender_addon.head import add_head
    from engine.animation import Caption, CaptionWord

    caption = scripted_caption()
    words = tuple(
        CaptionWord(w["text"], w["start"], w["end"], w["confidence"], w["sync"]) for w in caption["words"]
    )
    animation = dataclasses.replace(
        ground_truth_animation(),
        captions=[Caption(caption["start"], caption["end"], caption["text"], 0.9, caption["sync"], words)],
    )
    audio = validation.check_audio(write_speechlike_wav(tmp_path / "line.wav"))
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.timeline_markers.new("artist's beat", frame=7)
    head = add_head(scene)
    bpy.ops.ed.undo_push(message="before take")
    before = fingerprint(bpy)
    result = takes.write_take(
        scene, validation.check_target(head, "VERTEX"), animation, audio, 1, captions=True
    )
    return scene, takes.take_metadata(bpy.data.actions[result.action]), before


@pytest.mark.blender
def test_a_low_sync_word_renders_redder_than_a_high_sync_one(scripted_take, tmp_path):
    import bpy

    from blender_addon import review

    scene, meta, _ = scripted_take
    view = review.build_review(scene, meta, captions=True)
    runs = _runs(view)
    assert " ".join(r.text for r in runs).split() == [t for t, _ in WORDS]
    picked, peter = next(r for r in runs if r.text == "picked"), next(r for r in runs if r.text == "Peter")
    assert picked.color[0] > picked.color[1] and peter.color[1] > peter.color[0]  # 0.2 red, 0.95 green
    for start in {r.frame_final_start for r in runs}:  # each row: left to right, a channel per run
        row = [r for r in runs if r.frame_final_start == start]
        assert [r.location[0] for r in row] == sorted(r.location[0] for r in row)
        assert len({r.channel for r in row}) == len(row)
    assert len(runs) < len(WORDS)  # same-coloured neighbours share a strip

    pixels = _still(bpy, scene, view, runs[0].frame_final_start + 1, tmp_path / "line.png")
    measure = review._word_measure(view)
    band = pixels[: int(720 * 0.2)]
    for run in (picked, peter):  # in the render, each word's own pixels carry its colour
        left = int(run.location[0] * 1280)
        columns = band[:, left : left + int(measure(run.text))]
        other = peter if run is picked else picked
        assert _near(columns, run.color).sum() > 50 and _near(columns, other.color).sum() == 0


@pytest.mark.blender
def test_a_narrow_frame_pages_the_line_into_rows_in_turn(scripted_take):
    from blender_addon import review

    scene, meta, _ = scripted_take
    view = review.build_review(scene, meta, captions=True)
    view.render.resolution_x, view.render.resolution_y = 480, 480
    review.fit_captions(view)  # what render_review does after setting the movie's size
    runs = _runs(view)
    assert " ".join(r.text for r in runs).split() == [t for t, _ in WORDS]
    rows = sorted({(r.frame_final_start, r.frame_final_end) for r in runs})
    assert len(rows) >= 2 and all(a[1] == b[0] for a, b in zip(rows, rows[1:]))  # one row after another
    measure = review._word_measure(view)
    assert all(r.location[0] >= 0 and r.location[0] + measure(r.text) / 480 <= 1 for r in runs)


@pytest.mark.blender
def test_word_captions_keep_the_artist_data_and_undo_in_one_step(scripted_take):
    import bpy

    from blender_addon import review, takes

    scene, meta, before = scripted_take
    review.build_review(scene, meta, captions=True)
    bpy.ops.ed.undo_push(message="DualFace take")
    markers = [m.name for m in scene.timeline_markers]
    assert "artist's beat" in markers and " ".join(t for t, _ in WORDS) in markers  # one marker per line
    assert all(s.type != "TEXT" for s in scene.sequence_editor.strips_all)  # words go to the review scene
    bpy.ops.ed.undo()
    assert fingerprint(bpy) == before
    assert review.review_scene_for(bpy.context.scene, create=False) is None
    assert not any(takes.take_metadata(a) for a in bpy.data.actions)


@pytest.mark.blender
def test_audio_only_takes_keep_one_strip_per_line(scene, tmp_path):
    from blender_addon import review, takes, validation
    from blender_addon.head import add_head

    head = add_head(scene)
    audio = validation.check_audio(write_speechlike_wav(tmp_path / "hello.wav"))
    result = takes.write_take(
        scene, validation.check_target(head, "VERTEX"), ground_truth_animation(), audio, 1
    )
    meta = takes.take_metadata(head.data.shape_keys.animation_data.action)
    assert result.action and all("words" not in c for c in meta["captions"])
    view = review.build_review(scene, meta, captions=True)
    texts = [s for s in view.sequence_editor.strips_all if s.type == "TEXT"]
    assert not _runs(view) and review.WORD_SPANS_KEY not in view.keys()
    assert sorted(s.text for s in texts) == ["hello  [92%]", "mama  [35%]"]
