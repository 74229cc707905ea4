"""Reading data: every format, repairs of decidable problems, and a DataError for everything else."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from core.config import DataConfig
from core.data.columns import check_columns
from core.data.hub_datasets import load_hub_dataset
from core.data.rows import load_frame
from core.data.tables import SUPPORTED_SUFFIXES, read_table
from core.errors import DataError

ROWS = pd.DataFrame(
    {
        "text": ["Nike shoes are very comfortable", "Puma caps are ugly", "Vans socks, soft and nice"],
        "label": [1, 0, 1],
    }
)


def _write(path, frame: pd.DataFrame) -> None:
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".json":
        frame.to_json(path, orient="records")
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_every_format_round_trips(tmp_path, suffix):
    path = tmp_path / f"reviews{suffix}"
    _write(path, ROWS)
    frame = read_table(path)
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ROWS["text"].tolist()
    assert [int(v) for v in frame["label"]] == [1, 0, 1]
    assert frame.attrs["read_report"]["repairs"] == []
    assert len(read_table(path, max_rows=2)) == 2


def test_string_labels_are_kept_as_text(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("text,label\ngreat shoes,positive\nbad caps,negative\n", encoding="utf-8")
    assert read_table(path)["label"].tolist() == ["positive", "negative"]


def test_null_words_are_not_turned_into_nan_by_the_reader(tmp_path):
    # Curation decides what is null and reports it; the reader keeps what was written.
    path = tmp_path / "n.csv"
    path.write_text("text,label\nnan,1\nNone,0\n,1\nok text,0\n", encoding="utf-8")
    assert read_table(path)["text"].tolist() == ["nan", "None", "", "ok text"]


def test_latin1_file_is_repaired(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nCafé shoes are très légères,1\nMaßlos teuer,0\n".encode("latin-1"))
    frame = read_table(path)
    assert frame["text"].tolist() == ["Café shoes are très légères", "Maßlos teuer"]
    report = frame.attrs["read_report"]
    assert report["encoding"] in ("cp1252", "latin-1")
    assert any("not UTF-8" in r for r in report["repairs"])


def test_utf16_and_bom_are_repaired(tmp_path):
    path = tmp_path / "excel.tsv"
    path.write_bytes("text\tlabel\nNike socks are soft\t1\nVans caps are bad\t0\n".encode("utf-16"))
    frame = read_table(path)
    assert frame["text"].tolist() == ["Nike socks are soft", "Vans caps are bad"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbftext,label\nhello there,1\nbye now,0\n")
    assert list(read_table(bom).columns) == ["text", "label"]


def test_headerless_tsv_is_repaired(tmp_path):
    path = tmp_path / "noheader.tsv"
    path.write_text("Nike shoes are great\t1\nPuma caps are ugly\t0\nVans socks are soft\t1\n", encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == ["text", "label"]
    assert len(frame) == 3 and frame["text"].iloc[0] == "Nike shoes are great"
    assert any("not a header" in r for r in frame.attrs["read_report"]["repairs"])


def test_headerless_tsv_with_string_labels(tmp_path):
    path = tmp_path / "noheader.tsv"
    path.write_text("Nike shoes are great\tpositive\nPuma caps are ugly\tnegative\nVans are soft\tpositive\n")
    frame = read_table(path)
    assert list(frame.columns) == ["text", "label"] and len(frame) == 3


def test_a_real_header_is_kept(tmp_path):
    path = tmp_path / "h.tsv"
    path.write_text("review\tstars\nNike shoes are great\t5\nPuma caps are ugly\t1\n", encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == ["review", "stars"] and len(frame) == 2


def test_numbered_header_is_kept(tmp_path):
    path = tmp_path / "numbered.tsv"
    path.write_text("0\t1\nNike shoes are great\t1\nPuma caps are ugly\t0\n", encoding="utf-8")
    assert list(read_table(path).columns) == ["0", "1"]


def test_wrong_separator_is_repaired(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("text;label\nNike shoes, truly great;1\nPuma caps;0\n", encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].iloc[0] == "Nike shoes, truly great"


def test_column_names_are_stripped(tmp_path):
    path = tmp_path / "spaces.csv"
    path.write_text(" text , label\nhello there,1\nbye,0\n", encoding="utf-8")
    assert list(read_table(path).columns) == ["text", "label"]


def test_json_variants(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": ROWS.to_dict(orient="records")}))
    assert len(read_table(wrapped)) == 3
    columns = tmp_path / "columns.json"
    columns.write_text(json.dumps(ROWS.to_dict(orient="list")))
    assert list(read_table(columns).columns) == ["text", "label"]
    lines = tmp_path / "lines.json"  # JSON lines saved with a .json name
    ROWS.to_json(lines, orient="records", lines=True)
    frame = read_table(lines)
    assert len(frame) == 3 and frame.attrs["read_report"]["repairs"]


def test_torn_last_jsonl_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "torn.jsonl"
    ROWS.to_json(path, orient="records", lines=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"text": "Nike hoodies are so')
    frame = read_table(path)
    assert len(frame) == 3
    assert any("line 4" in w for w in frame.attrs["read_report"]["warnings"])


def test_garbage_in_the_middle_of_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": 1}\nthis is not json\n{"text": "b", "label": 0}\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"  \n\n  \n", "blank"),
        ("header.csv", b"text,label\n", "header .* but no data rows"),
        ("header.tsv", b"text\tlabel\n\n", "but no data rows"),
        ("binary.csv", b"\x00\x01\x02\x03garbage\x00\xff" * 50, "binary"),
        ("book.csv", b"PK\x03\x04" + b"\x00" * 100, "Excel"),
        ("fields.csv", b"text,label\nhello,1\nwhat, a day,0\nok,1\n", "line 3 has 3 fields"),
        ("quotes.csv", b'text,label\n"unclosed quote,1\nnext,0\n', "never closed"),
        ("bad.json", b'[{"text": "a", "label": 1},', "not valid JSON"),
        ("scalar.json", b"42", "single JSON value"),
        ("rows.json", b'["just", "strings"]', "not an object"),
        ("bad.parquet", b"PAR1 this is not parquet", "not a complete Parquet"),
        ("lines.jsonl", b'[1, 2]\n[3, 4]\n', "line 1 is list"),
        ("reviews.xlsx", b"whatever", "cannot read"),
    ],
)
def test_broken_files_raise_actionable_data_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_table(path)
    assert info.value.field in (None, "data.path")


def test_damaged_parquet_body(tmp_path):
    path = tmp_path / "cut.parquet"
    ROWS.to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[:8] + b"\x00" * (len(data) - 12) + data[-4:])
    with pytest.raises(DataError, match="Parquet"):
        read_table(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a folder"):
        read_table(tmp_path)


def test_missing_column_names_the_available_ones(tmp_path):
    path = tmp_path / "r.csv"
    ROWS.rename(columns={"text": "review"}).to_csv(path, index=False)
    cfg = DataConfig(source="file", path=str(path))
    with pytest.raises(DataError, match="its columns are: review, label") as info:
        load_frame(cfg)
    assert info.value.field == "data.text_column"
    frame = read_table(path)
    with pytest.raises(DataError, match="Did you mean 'label'") as info:
        check_columns(frame, DataConfig(text_column="review", label_column="labels"), "classification")
    assert info.value.field == "data.label_column"
    check_columns(frame, DataConfig(text_column="review", label_column="labels"), "mlm")  # label optional


def test_load_frame_dispatch(tmp_path):
    frame = load_frame(DataConfig())
    assert len(frame) == 2000 and frame.attrs["source"]["source"] == "synthetic"
    assert frame.attrs["label_names"] == ["negative", "positive"]
    path = tmp_path / "r.parquet"
    ROWS.to_parquet(path)
    frame = load_frame(DataConfig(source="file", path=str(path)))
    assert frame.attrs["source"] == {"source": "file", "path": str(path)}
    with pytest.raises(DataError, match="Unknown data source"):
        load_frame(DataConfig(source="ftp"))


def test_hub_dataset_fails_fast_offline():
    start = time.monotonic()
    with pytest.raises(DataError, match="not in the local cache .* cannot be reached") as info:
        load_hub_dataset("imdb", "train")
    assert time.monotonic() - start < 10
    assert "synthetic reviews or a data file" in str(info.value)
    with pytest.raises(DataError, match="cannot be reached"):
        load_frame(DataConfig(source="hub", path="mteb/tweet_sentiment_extraction"))
    with pytest.raises(DataError, match="Name the Hub dataset"):
        load_hub_dataset("  ")


def test_hub_without_network_reads_only_the_cache_and_flips_no_global(monkeypatch):
    import os

    from datasets import config as ds_config

    from core.models import hub

    # As if offline mode were off but the network is down: the probe answers, datasets must not retry.
    monkeypatch.setattr(ds_config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    environ = dict(os.environ)
    start = time.monotonic()
    with pytest.raises(DataError, match="cannot be reached"):
        load_hub_dataset("imdb")
    assert time.monotonic() - start < 10
    assert ds_config.HF_HUB_OFFLINE is False  # never switched, not even for the call
    assert dict(os.environ) == environ


def _fake_cached_hub_dataset(tmp_path, repo_id: str) -> str:
    """Build a dataset with datasets itself, then file it in the cache as the Hub dataset `repo_id` would be."""
    import shutil
    from pathlib import Path

    import datasets

    csv = tmp_path / "rows.csv"
    csv.write_text("text,label\nNike shoes are great,1\nugly socks,0\n", encoding="utf-8")
    built = datasets.load_dataset("csv", data_files=str(csv), cache_dir=str(tmp_path / "build"), split="train")
    source = Path(built.cache_files[0]["filename"]).parent  # .../csv/<config>/<version>/<hash>
    namespace, name = repo_id.split("/")
    target = tmp_path / "cache" / f"{namespace}___{name}" / "default" / source.parts[-2] / source.parts[-1]
    shutil.copytree(source, target)
    (target / "csv-train.arrow").rename(target / f"{name}-train.arrow")
    return str(tmp_path / "cache")


def test_cached_hub_dataset_loads_offline_without_touching_the_environment(tmp_path, monkeypatch):
    import os

    from datasets import config as ds_config
    from huggingface_hub import constants

    monkeypatch.setattr(ds_config, "HF_DATASETS_CACHE", _fake_cached_hub_dataset(tmp_path, "someone/reviews"))
    environ = dict(os.environ)
    flags = (ds_config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    frame = load_hub_dataset("someone/reviews", "train")
    assert frame["text"].tolist() == ["Nike shoes are great", "ugly socks"]
    assert frame.attrs["read_report"]["format"] == "hub"
    with pytest.raises(DataError, match="no split 'test'") as info:
        load_hub_dataset("someone/reviews", "test")
    assert info.value.field == "data.hub_split"
    assert dict(os.environ) == environ
    assert (ds_config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE) == flags
