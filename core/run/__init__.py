"""The run record on disk: everything about one fine-tune lives in its folder, nothing in a browser tab.

    folder    RunFolder: paths, status.json, metrics/probes JSONL, checkpoints, atomic writes
    sink      RunSink: what a training run publishes (events, metrics, probes), kept in memory and on disk
    history   the runs root read back: summaries and snapshots, cached by file stamps
    recovery  run ownership locks, and runs left 'running' by a process that died
"""
