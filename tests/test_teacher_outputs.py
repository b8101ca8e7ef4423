"""The teacher-output cache: what it returns equals the live teacher, sparse KD from it equals dense KD at
k = V, damaged entries are rebuilt (never read), each key component misses, and sweeps reuse it."""

import json
from types import SimpleNamespace

import pytest
import torch

from kdbench import teacher_outputs
from kdbench.cli import main
from kdbench.config import resolve
from kdbench.data.batching import Collator, LMCollator, train_loader
from kdbench.methods.kd import KDParams, kd_loss
from kdbench.runner import make_accelerator, make_step, model_inputs

VOCAB = 40


def tiny_lm(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def lm_features(n=10):
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        ids = torch.randint(1, VOCAB, (3 + i % 7,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] + ids[1:]})  # the first token is a "prompt"
    return rows


def build(tmp_path, teacher, features, collate, kind, k, temperature=1.0, name="entry"):
    folder = tmp_path / name
    arrays = lambda: teacher_outputs.compute(teacher, features, collate, kind, k, temperature,  # noqa: E731
                                             make_accelerator("cpu"), batch_size=4)
    return teacher_outputs.load_or_build(folder, {"test": name}, arrays, log=lambda m: None)


@pytest.mark.parametrize("side", ["right", "left"])
def test_sparse_kd_from_the_cache_equals_dense_kd_at_k_equals_v(tmp_path, side):
    teacher, student = tiny_lm(0), tiny_lm(1)
    features = lm_features()
    collate = LMCollator(0, side)
    store, meta = build(tmp_path, teacher, features, collate, "topk", k=VOCAB, temperature=2.0)
    assert meta["hit"] is False and store.kind == "topk"
    params = KDParams(temperature=2.0, alpha=1.0)
    for batch in train_loader(features, collate, 4, seed=0):
        out = student(**model_inputs(batch))
        with torch.no_grad():
            live = teacher(**model_inputs(batch))
        cached = store.batch(batch)
        sparse, _ = kd_loss(make_step(out, cached, batch, False), params)
        dense, _ = kd_loss(make_step(out, live, batch, False), params)
        # the only difference: the cache keeps the teacher's logits in fp16 (relative rounding <= 2^-11);
        # sparse_forward_kl itself equals the dense KL at k = V to 1e-5 in fp32 (test_chunked_losses.py)
        torch.testing.assert_close(sparse, dense, rtol=1e-3, atol=1e-6)
        grad_sparse = torch.autograd.grad(sparse, out.logits, retain_graph=True)[0]
        grad_dense = torch.autograd.grad(dense, out.logits)[0]
        torch.testing.assert_close(grad_sparse, grad_dense, rtol=1e-3, atol=1e-6)


def test_top_k_below_v_keeps_the_exact_top_k_and_the_full_lse(tmp_path):
    teacher = tiny_lm(0)
    features = lm_features(4)
    store, _ = build(tmp_path, teacher, features, LMCollator(0, "right"), "topk", k=5, temperature=1.5)
    batch = LMCollator(0, "right")(features)
    batch["example_index"] = torch.arange(len(features))
    cached = store.batch(batch)
    with torch.no_grad():
        logits = teacher(**model_inputs(batch)).logits
    real = batch["attention_mask"].bool()
    top = logits.topk(5, dim=-1)
    assert torch.equal(cached.topk_indices[real], top.indices[real])
    torch.testing.assert_close(cached.topk_values[real].float(), top.values[real], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(cached.lse[real], torch.logsumexp(logits / 1.5, -1)[real], rtol=1e-5, atol=1e-5)


def test_classification_entries_hold_the_live_logits(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=32)).eval()
    features = [{"input_ids": [1] + list(range(2, 4 + i)), "labels": i % 2} for i in range(9)]
    store, _ = build(tmp_path, teacher, features, Collator(0, False), "logits", k=0)
    for batch in train_loader(features, Collator(0, False), 4, seed=1):
        with torch.no_grad():
            live = teacher(**model_inputs(batch)).logits
        torch.testing.assert_close(store.batch(batch).logits, live, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_a_damaged_entry_is_detected_and_rebuilt(tmp_path, damage):
    teacher, features, collate = tiny_lm(0), lm_features(4), LMCollator(0, "right")
    build(tmp_path, teacher, features, collate, "topk", k=5)
    target = tmp_path / "entry" / "values.npy"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[-1] ^= 1
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-8])
    elif damage == "delete":
        target.unlink()
    else:
        (tmp_path / "entry" / "manifest.json").write_text("{")
    manifest, problem = teacher_outputs.check(tmp_path / "entry")
    assert manifest is None and problem
    messages, calls = [], []

    def arrays():
        calls.append(1)
        return teacher_outputs.compute(teacher, features, collate, "topk", 5, 1.0, make_accelerator("cpu"), 4)
    store, meta = teacher_outputs.load_or_build(tmp_path / "entry", {}, arrays, log=messages.append)
    assert calls == [1] and meta["hit"] is False and "damaged" in messages[0]
    assert teacher_outputs.check(tmp_path / "entry")[0] is not None


class Tokenizer:
    def __init__(self, name="tok", size=10):
        self.name_or_path, self.size = name, size

    def __len__(self):
        return self.size


def _parts(cfg=None, data=None, kind="topk", k=64, temperature=1.0, weights=None, tokenizer=None):
    from kdbench.teacher import teacher_key

    cfg = cfg or resolve({"suite": "perplexity_tiny"}, environ={})
    data = data or SimpleNamespace(train=SimpleNamespace(sha256="abc", examples=[1, 2]))
    weights = weights or {"teacher": {"sha256": "w"}}
    return teacher_key(teacher_outputs.key_parts(weights, tokenizer or Tokenizer(), data, cfg, kind, k, temperature))


@pytest.mark.parametrize("change", [
    {"weights": {"teacher": {"sha256": "other weights"}}},
    {"tokenizer": Tokenizer(name="other tokenizer")}, {"tokenizer": Tokenizer(size=11)},
    {"data": SimpleNamespace(train=SimpleNamespace(sha256="other data", examples=[1, 2]))},
    {"cfg": resolve({"suite": "perplexity_tiny", "train.max_length": "32"}, environ={})},
    {"cfg": resolve({"suite": "perplexity_tiny", "data.max_train_examples": "8"}, environ={})},
    {"cfg": resolve({"suite": "perplexity_tiny", "data.padding_side": "left"}, environ={})},
    {"k": 32}, {"temperature": 2.0}, {"kind": "logits"},
])
def test_every_key_component_misses(change):
    assert _parts(**change) != _parts()


def test_runs_reuse_the_outputs_and_teacher_cache_false_runs_the_teacher(tmp_path, data_root, cache_dir, capsys):
    base = ["suite=perplexity_tiny", "method=kd", "teacher_cache_k=16", f"data_dir={data_root}",
            f"results_dir={tmp_path}", f"cache_dir={cache_dir}"]
    assert main(["run", *base, "seed=1"]) == 0
    assert main(["run", *base, "seed=2"]) == 0
    assert main(["run", *base, "seed=2", "teacher_cache=false"]) == 0
    assert main(["run", *base, "seed=2", "method.divergence=rkl"]) == 0
    err = capsys.readouterr().out
    records = sorted((json.loads(p.read_text()) for p in (tmp_path / "perplexity_tiny").glob("*.json")),
                     key=lambda r: r["created_at"] + r["run_id"])
    used = [r["teacher_outputs"]["wikitext2"] for r in records]
    assert [u["used"] for u in used].count(True) == 2
    hits = [u.get("hit") for u in used if u["used"]]
    assert sorted(hits) == [False, True] or hits == [True, True]  # a warm session cache may already hold it
    assert {u.get("why") for u in used if not u["used"]} == {"teacher_cache=false",
                                                            "kd with these params needs the dense LM teacher"}
    assert "teacher outputs from cache" in err
    assert all(r["status"] == "complete" for r in records)
