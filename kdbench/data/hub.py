"""GLUE from the Hugging Face hub (`nyu-mll/glue`), used when a file is not under the data root.

Offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set) nothing is attempted, so no
command waits on a network timeout.
"""

from __future__ import annotations

import os

from kdbench.data.glue_tasks import GlueTask
from kdbench.data.local import Example, Split


def hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_split(task: GlueTask, split: str) -> Split:
    """Load one split of `nyu-mll/glue`; raises whatever `datasets` raises when unreachable."""
    import datasets

    ds = datasets.load_dataset("nyu-mll/glue", task.hub_config, split=split)
    columns = [c for c in ds.column_names if c not in ("label", "idx")]
    examples = [
        Example(row[columns[0]], row[columns[1]] if len(columns) > 1 else None, row["label"])
        for row in ds
        if row["label"] != -1
    ]
    return Split(examples, f"hub:nyu-mll/glue/{task.hub_config}/{split}", ds._fingerprint)
