"""Generation cost of the MiniLLM protocol (METHODS.md §8) here: generated tokens/s and wall time, per model and set.

    python benchmarks/protocol_cost.py --data ../shared/data --models smollm2-135m smollm2-6l --sets vicuna
    python benchmarks/protocol_cost.py --data ../shared/data --rows 16 --seeds 10   # a slice of every set

Decodes as `kdbench run suite=minillm_full` scores: kdbench.generation.generate, sampling at T 1, top-p 1, top-k 0,
prompts cut to their first 256 tokens (kdbench.suites.minillm.cut_prompt), up to `--max-new-tokens` (256) new
tokens, batch 16, on the threads torch is given (set OMP_NUM_THREADS). For each model, set and seed it times the
generation and counts each answer's generated tokens (up to and including its first EOS, from the ids
`model.generate` returns; re-tokenising the decoded text would count more) and the batches' decoding steps. Models are loaded as the suite builds them
before training: the teacher as given and the student's layer subset (its per-token cost is the architecture's;
its answer lengths are those of an untrained student).

The last column scales what was measured to the whole protocol (every row of the set, seeds 10..50) by the
measured seconds per batch. A batch's wall time is set by its longest answer, and sampled answers of these models
mostly run to the cap, so that scale is close; it is an extrapolation all the same and is printed as one, unless
the run covered the whole set and all five seeds, which the table then says.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from kdbench.config import load_suite_file

PROTOCOL = load_suite_file("minillm_full")  # the whole protocol's sets, seeds, token cap and batch
PROTOCOL_SEEDS = PROTOCOL["eval"]["seeds"]


class CountingModel:
    """`model` for kdbench.generation.generate, counting what each `generate` call produced: per answer the new
    tokens up to and including the first EOS (the rest is padding), per batch the decoding steps it ran."""

    def __init__(self, model, eos_token_id: int):
        self.model, self.eos = model, eos_token_id
        self.tokens = self.steps = 0

    def parameters(self):
        return self.model.parameters()

    def eval(self):
        self.model.eval()
        return self

    def generate(self, input_ids, **kwargs):
        out = self.model.generate(input_ids=input_ids, **kwargs)
        self.tokens += answer_tokens(out[:, input_ids.shape[1]:], self.eos)
        self.steps += out.shape[1] - input_ids.shape[1]
        return out


def answer_tokens(new_ids, eos: int) -> int:
    """Tokens generated per row of `new_ids` (batch x steps), summed: up to and including the row's first `eos`,
    or every step where it has none."""
    total = 0
    for row in new_ids.tolist():
        total += row.index(eos) + 1 if eos in row else len(row)
    return total


def whole_protocol_seconds(seconds: float, rows: int, seeds: list[str], set_rows: int, batch_size: int,
                           whole_settings: bool = True) -> tuple[float, bool]:
    """(seconds for every row of the set under the five protocol seeds, whether that was measured rather than
    scaled). Scales by batches, not answers: a batch runs until its longest answer ends. `whole_settings`: the
    run used the protocol's token cap and batch (else it is never "measured")."""
    if whole_settings and rows == set_rows and sorted(seeds) == sorted(PROTOCOL_SEEDS):
        return seconds, True
    measured = math.ceil(rows / batch_size) * len(seeds)
    return seconds / measured * math.ceil(set_rows / batch_size) * len(PROTOCOL_SEEDS), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "smollm2-6l"])
    parser.add_argument("--sets", nargs="+", default=PROTOCOL["tasks"])
    parser.add_argument("--rows", type=int, default=0, help="the first N rows of each set (0: all)")
    parser.add_argument("--seeds", nargs="+", default=PROTOCOL_SEEDS)
    parser.add_argument("--max-new-tokens", type=int, default=PROTOCOL["eval"]["max_new_tokens"])
    parser.add_argument("--batch-size", type=int, default=PROTOCOL["eval"]["batch_size"])
    parser.add_argument("--out", default="", help="also write the rows as JSON here")
    args = parser.parse_args()

    import torch

    from kdbench.data.minillm_eval import read_prompt_set
    from kdbench.generation import generate
    from kdbench.models.load import load_causal_lm, load_tokenizer
    from kdbench.suites.minillm import EVAL_FILES, cut_prompt

    base = Path(args.data) / "minillm-eval"
    sets = {name: read_prompt_set(base / EVAL_FILES[name]) for name in args.sets}
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch_size}, up to {args.max_new_tokens} new tokens,"
          f" seeds {' '.join(args.seeds)}, rows {args.rows or 'all'}")
    print("| model | set | answers | generated tokens | tokens/answer | decoding steps | wall s | tokens/s | s/step |"
          " full set x 5 seeds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.models:
        tokenizer = load_tokenizer(name)
        model = CountingModel(load_causal_lm(name, 0).eval(), tokenizer.eos_token_id)
        for set_name, examples in sets.items():
            chosen = examples[: args.rows] if args.rows else examples
            prompts = [cut_prompt(tokenizer, prompt) for prompt, _ in chosen]
            model.tokens = model.steps = 0
            seconds = 0.0
            for seed in args.seeds:
                start = time.perf_counter()
                generate(model, tokenizer, prompts, args.max_new_tokens, args.batch_size, sample=True, seed=int(seed),
                         progress=False)
                seconds += time.perf_counter() - start
            tokens, steps = model.tokens, model.steps
            answers = len(prompts) * len(args.seeds)
            full_s, whole = whole_protocol_seconds(
                seconds, len(prompts), args.seeds, len(examples), args.batch_size,
                (args.max_new_tokens, args.batch_size) == (parser.get_default("max_new_tokens"),
                                                           parser.get_default("batch_size")))
            rows.append({"model": name, "set": set_name, "answers": answers, "tokens": tokens, "steps": steps,
                         "wall_s": seconds, "tokens_per_s": tokens / seconds, "full_protocol_s": full_s,
                         "measured_whole": whole})
            label = "measured" if whole else "extrapolated"
            print(f"| {name} | {set_name} | {answers} | {tokens} | {tokens / answers:.0f} | {steps} | {seconds:.0f} |"
                  f" {tokens / seconds:.1f} | {seconds / steps:.3f} | {full_s / 3600:.2f} h ({label}) |")
    for name in args.models:
        total = sum(r["full_protocol_s"] for r in rows if r["model"] == name)
        print(f"{name}: the sets measured, whole protocol (every row, 5 seeds): {total / 3600:.1f} h")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
