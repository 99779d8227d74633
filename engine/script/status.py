"""Which script-mode tools this Python has, in a line the Blender panel can show.

Script mode needs a pronunciation source (eSpeak NG, any corpus language; else the shipped English
lexicon plus the user's lexicon files) and an aligner (the model's own CTC head: always there;
pocketsphinx: optional, English). Cheap to call: nothing heavier than ctypes is loaded.
"""

from __future__ import annotations

import functools
import importlib.util


@functools.lru_cache(maxsize=1)
def script_tools() -> dict[str, bool]:
    from engine.script.phonemize import espeak_available

    return {
        "espeak-ng": espeak_available(),
        "pocketsphinx": importlib.util.find_spec("pocketsphinx") is not None,
    }


def describe_script_tools(through_worker: bool = False) -> str:
    """One line: what script mode uses here, and what is missing."""
    if through_worker:
        return "Script: aligned by the engine worker (its eSpeak NG and the model's aligner)"
    tools = script_tools()
    if tools["espeak-ng"]:
        return "Script: eSpeak NG phones, model aligner (all 5 languages)"
    return (
        "Script: English only, from the shipped lexicon and your lexicon files; "
        "missing eSpeak NG (apt-get install espeak-ng) for names and other languages"
    )
