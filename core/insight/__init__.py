"""Insight: what a model predicts, before and after fine-tuning.

    probes       top-k / label probabilities for the probe texts
    predictions  per-example predictions on the evaluation set, and what they say (confusion, agreement)
    generate     base and fine-tuned continuations side by side
    report       one self-contained HTML report of a run
"""
