"""Batched text generation for the generation suites: greedy with the KV cache by default, or sampling.

    generate(model, tokenizer, prompts, max_new_tokens=64)                       # greedy
    generate(model, tokenizer, prompts, max_new_tokens=64, sample=True, seed=10)  # T = 1, top-p = 1

Prompts are left-padded (decoders continue from the last real token), batched
by length to waste little padding, and the outputs come back in prompt order,
decoded from the new tokens only.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 16, sample: bool = False,
             seed: int = 0, temperature: float = 1.0, top_p: float = 1.0, progress: bool = True) -> list[str]:
    device = next(model.parameters()).device
    model.eval()
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: list[str | None] = [None] * len(prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if sample:
        torch.manual_seed(seed)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="generate", unit="batch", leave=False, disable=not progress):
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if sample else {"do_sample": False}
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                             pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, use_cache=True, **sampling)
        for row, i in enumerate(batch):
            outputs[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()
    return outputs
