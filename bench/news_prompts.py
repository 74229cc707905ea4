"""Fresh news headlines asked the way an sft run on the news preset asks them: the prompts the client and
generation benches answer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

Chat = list[dict[str, str]]
FRESH_SEED = 4242  # the preset trains on seed 0's headlines


def fresh_headlines(rows: int) -> pd.DataFrame:
    """`rows` distinct headlines (text, label, human) the preset did not train on."""
    from core.data.news import generate_headlines

    return generate_headlines(rows * 3, seed=FRESH_SEED).drop_duplicates("text").head(rows).reset_index(drop=True)


def news_eval_chats(run: Path, rows: int) -> tuple[list[Chat], list[str]]:
    """(prompt chats, categories) of fresh headlines through the run's own prompt template and label order."""
    from core.data.instructions import conversations_from_labels
    from core.run.folder import RunFolder

    folder = RunFolder(Path(run))
    report = folder.status().get("data_report") or {}
    chats = conversations_from_labels(fresh_headlines(rows), label_names=report.get("answer_labels") or None,
                                      template=folder.config().data.prompt_template)
    return [chat[:-1] for chat in chats], [chat[-1]["content"] for chat in chats]


def train_short_news_run(folder: Path, steps: int = 30) -> float:
    """`core train --preset news --max-steps STEPS` into `folder`; its wall seconds."""
    from bench import core_command

    return core_command("train", "--preset", "news", "--max-steps", str(steps), "--output-dir", str(folder))
