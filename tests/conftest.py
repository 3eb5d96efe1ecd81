"""Shared test setup: offline always, few threads, session-scoped tiny-model kit."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import veripo  # noqa: E402,F401  (applies the torchvision shim before transformers is imported)

torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests run only with CUDA; ``slow`` tests only with VERIPO_RUN_SLOW=1 (or ``-m slow``)."""
    marks = config.getoption("-m") or ""
    run_slow = os.environ.get("VERIPO_RUN_SLOW", "") not in ("", "0") or ("slow" in marks and "not slow" not in marks)
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    not_now = pytest.mark.skip(reason="slow: set VERIPO_RUN_SLOW=1 to run it")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(not_now)
