"""The probe texts a run scores: the user's own, else a few chosen from the run's data.

Probes written for the synthetic reviews ("Nike shoes are very [MASK]") said nothing about a news
classifier, so unless the user typed their own the probes come from the data itself:
    classification  one text per class (classes in order of first appearance), round the classes
                    again when there are fewer classes than probes
    sft             the first user turn of a few chats, as the run's prompt template renders labelled
                    texts: what the model is trained to answer
    mlm             a few texts with their last longer word masked
    causal          the same texts cut before that word, where the model should continue
The synthetic reviews keep the hand-written masked- and causal-LM probes (their templates were
written from them, core.data.synthetic); a source that cannot be read or offers no usable text falls
back to the task's defaults (RunConfig.probe_texts).

Only the first PROBE_SCAN_ROWS rows are looked at: Setup's preview holds as many, so the probes it
shows for a Hub dataset are the ones the run scores. Setup and the engine both call `run_probe_texts`,
so a run left at the default scores what Setup showed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from core.config import DataConfig, RunConfig
from core.errors import TuneboardError

if TYPE_CHECKING:  # Setup's probes panel imports this module; pandas loads when rows are read
    import pandas as pd

PROBE_SCAN_ROWS = 200
# Classification: one text per class, at most CLASSIFICATION_PROBES; with fewer than OTHER_PROBES
# classes each class gets as many (two classes: two texts each), so no class leans the panel.
CLASSIFICATION_PROBES = 5
OTHER_PROBES = 3
# Longer texts make a probe panel a wall of text and, for a masked LM, risk the mask being cut off
# at the model's max length; a prompt is not cut (half a question is another question), only passed over.
MAX_PROBE_CHARS = 160
MAX_PROMPT_CHARS = 400
# A masked word worth guessing: three letters or more, any script (not "a", "of" or a number).
_WORD = re.compile(r"[^\W\d_]{3,}")
_MASK = "[MASK]"
# Where a probe that spans several lines (an instruction prompt) ends in Setup's editor.
PROBE_SEPARATOR = "---"


def run_probe_texts(cfg: RunConfig, frame: pd.DataFrame | None = None) -> list[str]:
    """The probes a run scores: its configured texts, else ones chosen from its data (`frame`, else loaded)."""
    if cfg.probes.texts:
        return list(cfg.probes.texts)
    if not follows_data(cfg):
        return cfg.probe_texts()
    if frame is None:
        from core.data.rows import load_rows

        try:
            frame = load_rows(cfg.data)
        except TuneboardError:  # the data's own check says why; the probes need not say it again
            return cfg.probe_texts()
    return choose_probes(cfg.task, frame, cfg.data) or cfg.probe_texts()


def follows_data(cfg: RunConfig) -> bool:
    """Whether default probes come from this run's data (all but the synthetic reviews' language models)."""
    reviews = cfg.data.source == "synthetic" and cfg.data.synthetic.kind != "news"
    return not (reviews and cfg.task in ("mlm", "causal"))


def choose_probes(task: str, frame: pd.DataFrame, data: DataConfig) -> list[str]:
    """A few probe texts for `task` from the rows of `frame` (empty when none fit)."""
    head = frame.head(PROBE_SCAN_ROWS)
    if task == "sft":
        return _prompts(frame, head, data)
    if data.text_column not in head.columns:
        return []
    from core.data.cells import NULL_STRINGS

    texts = [_one_line(value, NULL_STRINGS) for value in head[data.text_column].tolist()]
    if task == "classification":
        if data.label_column not in head.columns:
            return []
        return _per_class(texts, head[data.label_column])
    if task not in ("mlm", "causal"):
        return []
    chosen = []
    for text in dict.fromkeys(texts):
        probe = _masked(_clipped(text, MAX_PROBE_CHARS)) if text else None
        if probe is not None:
            chosen.append(probe if task == "mlm" else probe[: probe.index(_MASK)].rstrip())
        if len(chosen) == OTHER_PROBES:
            break
    return chosen


def probes_as_text(texts: Sequence[str]) -> str:
    """The probes as an editor shows them: one per line, or between '---' lines when one spans several."""
    if any("\n" in text for text in texts):
        return f"\n{PROBE_SEPARATOR}\n".join(texts)
    return "\n".join(texts)


def probes_from_text(entered: str) -> list[str]:
    """The probes typed into the editor: split at '---' lines when there are any, else one per line."""
    lines = entered.splitlines()
    if any(line.strip() == PROBE_SEPARATOR for line in lines):
        blocks, block = [], []
        for line in [*lines, PROBE_SEPARATOR]:
            if line.strip() == PROBE_SEPARATOR:
                blocks.append("\n".join(block).strip())
                block = []
            else:
                block.append(line)
        return [b for b in blocks if b]
    return [line.strip() for line in lines if line.strip()]


# ---- choosing ----------------------------------------------------------------------------------

def _per_class(texts: list[str], labels: pd.Series) -> list[str]:
    """One short text per class in order of first appearance, then round again (see CLASSIFICATION_PROBES)."""
    from core.data.cells import canonical_labels, parse_labels


    _, _, missing, unparseable = parse_labels(labels)
    by_class: dict[str, list[str]] = {}
    for text, label, bad in zip(texts, canonical_labels(labels).tolist(), missing | unparseable, strict=True):
        if text and not bad:
            by_class.setdefault(str(label), []).append(text)
    queues = [_shortest_first(candidates, MAX_PROBE_CHARS) for candidates in by_class.values()]
    wanted = min(CLASSIFICATION_PROBES, len(queues) * -(-OTHER_PROBES // max(1, len(queues))))
    chosen: list[str] = []
    while any(queues) and len(chosen) < wanted:
        for queue in queues:
            while queue and queue[0] in chosen:
                queue.pop(0)
            if queue and len(chosen) < wanted:
                chosen.append(queue.pop(0))
    return chosen


def _prompts(frame: pd.DataFrame, head: pd.DataFrame, data: DataConfig) -> list[str]:
    """The first user turn of the first chats, rendered as the run renders them (labelled texts: its template)."""
    from core.data.instructions import classification_labels, run_conversations

    if data.label_column in frame.columns and not frame.attrs.get("label_names"):
        # From every row, as a run lists them in its prompt: the first rows may lack a class.
        head = head.copy()
        head.attrs = {**frame.attrs, "label_names": classification_labels(frame, data.label_column)}
    try:
        chats, _, _ = run_conversations(head, data)
    except TuneboardError:
        return []
    firsts = [next((str(turn["content"]) for turn in chat if turn.get("role") == "user"), "") for chat in chats]
    short = [prompt for prompt in dict.fromkeys(firsts) if prompt.strip() and len(prompt) <= MAX_PROMPT_CHARS]
    return short[:OTHER_PROBES]


def _shortest_first(texts: Iterable[str], limit: int) -> list[str]:
    """Distinct texts that fit `limit` in their order, then the others cut to it, shortest first."""
    distinct = list(dict.fromkeys(texts))
    fitting = [t for t in distinct if len(t) <= limit]
    longer = sorted((t for t in distinct if len(t) > limit), key=len)
    return fitting + [_clipped(t, limit) for t in longer]


def _masked(text: str) -> str | None:
    """The text with its last word of 3+ letters after the second word masked; None when it has none."""
    words = list(_WORD.finditer(text))
    if len(words) < 3:
        return None
    last = words[-1]
    return text[: last.start()] + _MASK + text[last.end():]


def _clipped(text: str, limit: int) -> str:
    """The text cut at the last space before `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut or text[:limit]


def _one_line(value: object, nulls: Iterable[str]) -> str:
    """A cell as one line of text ('' for a missing one, or a null word of `nulls`): Setup's editor holds one
    probe per line."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = " ".join(str(value).split())
    return "" if text.lower() in nulls else text
