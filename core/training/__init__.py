"""Training: one fine-tune with transformers.Trainer, whoever calls it (thread, child process, CLI, accelerate).

    trainer      the public builder: prepared data, training arguments and the Trainer subclass
    engine       train(cfg, folder, sink, stop_event) in phases: before, train, after; OOM retry
    strategies   which parameters train: full, feature extraction, freeze N, gradual unfreezing, LoRA
    callbacks    the Trainer's events turned into the sink's plain data; stopping and unfreezing
    metrics      evaluation metrics per task
    lr_finder    the learning-rate range test
    run_length   the default length: enough steps for the data, evaluations, early stopping, 'still improving'
    peak_memory  a run's peak memory, per device
"""
