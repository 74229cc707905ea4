"""Which columns the text and label pickers start from, shared by Setup and Data.

The config keeps the user's choice while the data stays the same (reruns, the other page); new
data (another upload, another source) starts from the columns core finds in it; a config just
loaded (YAML, a past run) keeps its columns wherever the data has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from core.config import DataConfig
from core.data.columns import find_label_column, find_text_column

if TYPE_CHECKING:  # a type only: importing pandas costs a first page 0.7 s
    import pandas as pd

COLUMNS_FOR_KEY = "tb_columns_for"


def pick_columns(data: DataConfig, frame: pd.DataFrame, generation: int) -> None:
    """Point data.text_column and data.label_column at columns `frame` has (found ones for new data)."""
    columns = [str(c) for c in frame.columns]
    if not columns:
        return
    identity = (data.source, data.path, tuple(columns))
    seen = st.session_state.get(COLUMNS_FOR_KEY)
    # Same form generation, other data: the previous picks belonged to the previous file.
    new_data = seen is not None and seen[0] == generation and seen[1] != identity
    st.session_state[COLUMNS_FOR_KEY] = (generation, identity)
    if new_data or data.text_column not in columns:
        data.text_column = find_text_column(frame) or data.text_column
    data.text_column = data.text_column if data.text_column in columns else columns[0]
    others = [c for c in columns if c != data.text_column] or columns
    label = data.label_column
    if new_data or label not in columns:
        label = find_label_column(frame, exclude=(data.text_column,)) or label
    data.label_column = label if label in columns else others[0]
