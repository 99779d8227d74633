"""Script mode: the line's text aligned to its audio, driving the mouth and spelling the captions.

Entry points: `engine.script.scripted.script_take` (what `Engine` calls), `engine.script.take`
(normalise, phonemize, align, check a script), `engine.script.words` (captions, timing exports).
See docs/script-mode.md. Nothing here imports torch at module level.
"""
