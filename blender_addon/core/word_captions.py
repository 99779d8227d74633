"""Script-mode captions laid out word by word, each word in the colour of its own sync score.

A scripted take's caption line carries its words (text, aligned times, sync). The viewport overlay
and the review render both show a line as one row of words, each coloured like a line is today
(captions_style.sync_colour), so the eye goes straight to the word the lips do not show. A line
too wide for the frame is shown as consecutive rows, each from its first word on, as subtitles
page a long sentence; no row ever needs a second text line, so words of one row share a baseline.

Widths come from a `measure(text) -> width` callable (blf in Blender), so the layout is plain
arithmetic that tests can check without a GPU or a font.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .captions_style import caption_label, sync_colour

Measure = Callable[[str], float]
Colour = tuple[float, float, float, float]


@dataclass(frozen=True)
class PlacedWord:
    """One word of a row: `x` is its left edge measured from the row's left edge."""

    text: str
    sync: float
    start: float  # seconds from the take's start
    end: float
    x: float
    width: float

    @property
    def colour(self) -> Colour:
        return sync_colour(self.sync)


@dataclass(frozen=True)
class WordRow:
    """Words shown together, from `start` to `end` (seconds from the take's start)."""

    words: tuple[PlacedWord, ...]
    width: float
    start: float
    end: float

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


@dataclass(frozen=True)
class ColourRun:
    """Neighbouring words of a row that come out in the same colour: one text strip for all."""

    prefix: str  # the row's text before the run, its trailing space included
    text: str
    colour: Colour
    words: tuple[PlacedWord, ...]


def caption_words(caption: Mapping) -> list[dict]:
    """The caption's script words (take metadata), or [] for an audio-only caption or one whose
    words are malformed (then the line is shown whole, as without a script)."""
    words = caption.get("words") or []
    if not isinstance(words, Sequence) or isinstance(words, str):
        return []
    checked = []
    for word in words:
        try:
            text = str(word["text"]).strip()
            values = float(word["start"]), float(word["end"]), float(word["sync"])
        except (KeyError, TypeError, ValueError):
            return []
        if not text:
            continue
        checked.append({"text": text, "start": values[0], "end": values[1], "sync": values[2]})
    return checked


def word_rows(caption: Mapping, measure: Measure, max_width: float) -> list[WordRow]:
    """The caption's words in rows no wider than `max_width` (a single word wider than that gets
    a row of its own). The first row shows from the line's start, each later one from its first
    word's start; each row ends where the next begins, the last with the line."""
    words = caption_words(caption)
    groups: list[list[dict]] = []
    for word in words:
        candidate = " ".join(w["text"] for w in [*groups[-1], word]) if groups else ""
        if groups and measure(candidate) <= max_width:
            groups[-1].append(word)
        else:
            groups.append([word])
    line_start, line_end = float(caption["start"]), float(caption["end"])
    starts = [line_start] + [max(line_start, group[0]["start"]) for group in groups[1:]]
    ends = starts[1:] + [line_end]
    return [
        _placed_row(group, measure, start, max(start, end)) for group, start, end in zip(groups, starts, ends)
    ]


def _placed_row(group: list[dict], measure: Measure, start: float, end: float) -> WordRow:
    placed = []
    for index, word in enumerate(group):
        prefix = row_prefix([w["text"] for w in group], index)
        placed.append(
            PlacedWord(
                word["text"], word["sync"], word["start"], word["end"], measure(prefix), measure(word["text"])
            )
        )
    return WordRow(tuple(placed), measure(" ".join(w["text"] for w in group)), start, end)


def row_prefix(texts: Sequence[str], index: int) -> str:
    """The row's text before word `index`, with the space that separates it from that word."""
    return " ".join(texts[:index]) + (" " if index else "")


def row_at(rows: Sequence[WordRow], seconds: float) -> WordRow | None:
    for row in rows:
        if row.start <= seconds < row.end:
            return row
    return None


def colour_runs(row: WordRow) -> list[ColourRun]:
    """The row split where the colour changes: a well-synced line is one run, a red word its own."""
    runs: list[ColourRun] = []
    texts = [word.text for word in row.words]
    for index, word in enumerate(row.words):
        if runs and runs[-1].colour == word.colour:
            last = runs[-1]
            runs[-1] = ColourRun(last.prefix, f"{last.text} {word.text}", last.colour, (*last.words, word))
        else:
            runs.append(ColourRun(row_prefix(texts, index), word.text, word.colour, (word,)))
    return runs


# -- the viewport overlay -------------------------------------------------------------------------

OVERLAY_WIDTH_SHARE = 0.9  # a row may fill this share of the viewport's width
OVERLAY_RAISE = 1.5  # the baseline sits this many font sizes above the viewport's bottom edge


@dataclass(frozen=True)
class DrawText:
    """One piece of text for the overlay to draw: its left edge, baseline and colour (pixels)."""

    text: str
    x: float
    y: float
    colour: Colour


def caption_at(meta: Mapping, frame: float) -> dict | None:
    """The take's non-blank caption under the playhead (`meta` is the take's metadata)."""
    seconds = (frame - meta["start_frame"]) / float(meta["fps"])
    for caption in meta.get("captions", []):
        if caption["start"] <= seconds < caption["end"] and caption["text"].strip():
            return caption
    return None


def overlay_texts(meta: Mapping, frame: float, measure: Measure, region_width: float, font_size: float):
    """What the overlay draws at `frame`: the row of script words under the playhead, each in its
    own sync colour, centred; without words, the line and its score in the line's colour."""
    caption = caption_at(meta, frame)
    if caption is None:
        return []
    y = font_size * OVERLAY_RAISE
    seconds = (frame - meta["start_frame"]) / float(meta["fps"])
    row = row_at(word_rows(caption, measure, region_width * OVERLAY_WIDTH_SHARE), seconds)
    if row is None:
        label = caption_label(caption["text"], caption["sync"])
        return [DrawText(label, (region_width - measure(label)) / 2, y, sync_colour(caption["sync"]))]
    left = (region_width - row.width) / 2
    return [DrawText(word.text, left + word.x, y, word.colour) for word in row.words]
