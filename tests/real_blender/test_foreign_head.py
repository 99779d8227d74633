"""Retargeting in a stock Blender (numpy only): fit DualFace to a head that is not its template,
give it the 52 ARKit shape keys, and animate it with a take."""

from __future__ import annotations


def test_fit_arkit_keys_and_take_on_a_foreign_head(lane, speech):
    run = lane.script("foreign_head.py", str(speech), timeout=240)
    report = run.report
    assert run.returncode == 0 and report, run.output[-4000:]
    assert not run.blocked("scipy", "librosa"), run.blocked()
    assert report["vertices"] > 7000
    assert report["fit"] == ["FINISHED"] and report["fit_key"], run.output[-3000:]
    assert report["arkit"] == ["FINISHED"] and report["shape_keys"] == 53  # Basis + 52
    assert report["jaw_open_moves"] > 200, "jawOpen carried over must move the mouth and chin"
    assert report["take"] == ["FINISHED"], run.output[-3000:]
    assert report["take_action"] and report["take_mode"] == "VERTEX"
