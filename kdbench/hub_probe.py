"""Is the Hugging Face hub reachable? Asked once per command, within seconds, before anything loads.

Without HF_HUB_OFFLINE set, every hub fallback (a dataset or model the data root does not hold, a README
probe of `datasets`) would retry an unreachable hub for 30-60 s. So `kdbench run|sweep|calibrate|study` first
opens one TCP connection to the hub's host (HF_ENDPOINT, default huggingface.co:443) with a 3 s timeout.
When that fails, it says so in one line and goes on offline: HF_HUB_OFFLINE and HF_DATASETS_OFFLINE are set
for the process (and in huggingface_hub / datasets if they were imported already), so every hub path takes
its offline branch, which either finds local files or stops with its clear error. A reachable hub changes
nothing; an explicit HF_HUB_OFFLINE skips the probe.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

from kdbench.data.hub import hub_offline  # HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set: the user said offline

TIMEOUT_S = 3.0
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_address() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)


def unreachable_reason() -> str | None:
    """None when a TCP connection to the hub opens within TIMEOUT_S, else why not."""
    host, port = hub_address()
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return None
    except OSError as e:
        return f"{host}:{port}: {e.strerror or type(e).__name__}" if not isinstance(e, TimeoutError) else \
            f"{host}:{port}: no answer in {TIMEOUT_S:.0f} s"


def go_offline() -> None:
    for var in OFFLINE_VARS:
        os.environ[var] = "1"
    if "huggingface_hub.constants" in sys.modules:  # read at import: set the imported value too
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True
    if "datasets.config" in sys.modules:
        sys.modules["datasets.config"].HF_HUB_OFFLINE = True
        sys.modules["datasets.config"].HF_DATASETS_OFFLINE = True


def ensure_reachable_or_offline(log=print) -> None:
    """Probe the hub once unless the user declared offline mode; unreachable: one line, then offline."""
    if hub_offline():
        return
    reason = unreachable_reason()
    if reason is not None:
        log(f"kdbench: the Hugging Face hub is unreachable ({reason}); going on offline (HF_HUB_OFFLINE=1):"
            " local data, presets and cached models only")
        go_offline()
