"""P6: generation throughput of kdbench's rouge suite path ÷ lm-eval's HFLM `generate_until`, same model, same prompts.

    python benchmarks/generation_throughput.py --data ../shared/data --prompts 32 --max-new-tokens 48

Both decode greedily with the KV cache from the same SmolLM2 model and the first SciTLDR test prompts,
batch size 16, at most `--max-new-tokens` new tokens, stopping at EOS only (lm-eval's `until` is set to
the EOS text it would add anyway). Throughput = generated tokens (counted with the tokenizer on each
output) ÷ wall seconds; median and spread over `--repeats`. Target ≥ 1.0.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from kdbench.generation import generate
    from kdbench.models.load import load_causal_lm, load_tokenizer
    from kdbench.suites.generation import TASK_LOADERS, render

    tokenizer = load_tokenizer(args.model)
    model = load_causal_lm(args.model, 0).eval()
    _, test = TASK_LOADERS["scitldr"](Path(args.data))
    prompts = [render(tokenizer, p) for p, _ in test.examples[: args.prompts]]

    def count(outputs):
        return sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs)

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, max_length=2048)
    eos = tokenizer.decode([tokenizer.eos_token_id])
    requests = [Instance(request_type="generate_until", doc={}, idx=i,
                         arguments=(p, {"until": [eos], "max_gen_toks": args.max_new_tokens, "do_sample": False}))
                for i, p in enumerate(prompts)]
    rates = {"kdbench": [], "lm-eval HFLM": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = generate(model, tokenizer, prompts, args.max_new_tokens, args.batch_size, progress=False)
        rates["kdbench"].append(count(ours) / (time.perf_counter() - start))
        start = time.perf_counter()
        theirs = lm.generate_until(requests, disable_tqdm=True)
        rates["lm-eval HFLM"].append(count(theirs) / (time.perf_counter() - start))
    for name, values in rates.items():
        print(f"{name:14} {statistics.median(values):8.1f} generated tokens/s ({min(values):.1f}–{max(values):.1f})")
    ratio = statistics.median(rates["kdbench"]) / statistics.median(rates["lm-eval HFLM"])
    print(f"P6: kdbench ÷ HFLM = {ratio:.3f}  (target ≥ 1.0: {'met' if ratio >= 1.0 else 'not met'})")


if __name__ == "__main__":
    main()
