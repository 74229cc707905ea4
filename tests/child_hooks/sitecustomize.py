"""Loaded by every Python process started with this folder on PYTHONPATH (tests only).

A training child process cannot be monkeypatched from the test, so a test that needs its steps
slowed (to stop or kill it mid-run on any machine) sets TUNEBOARD_TEST_STEP_DELAY_S and puts this
folder on PYTHONPATH; the child then sleeps that long before each training step.
"""

import os

_DELAY = os.environ.get("TUNEBOARD_TEST_STEP_DELAY_S")
if _DELAY:
    import time

    from core.training.trainer import TuneboardTrainer

    _original_step = TuneboardTrainer.training_step

    def _slow_step(self, *args, **kwargs):
        time.sleep(float(_DELAY))
        return _original_step(self, *args, **kwargs)

    TuneboardTrainer.training_step = _slow_step
