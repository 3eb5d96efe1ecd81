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
    if os.environ.get("VERIPO_RUN_SLOW", "") not in ("1", "true", "yes"):  # slow tests: VERIPO_RUN_SLOW=1 pytest -m slow
        skip_slow = pytest.mark.skip(reason="slow: set VERIPO_RUN_SLOW=1 to run")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
