"""The teacher-output cache: what it returns equals the live teacher, sparse KD from it equals dense KD at
k = V, damaged entries are rebuilt (never read), each key component misses, and sweeps reuse it."""

import json
from types import SimpleNamespace

import pytest
import torch

from kdbench.teacher import cache as teacher_outputs
from kdbench.teacher.outputs import TeacherOut
from kdbench.cli import main
from kdbench.config import resolve
from kdbench.data.batching import Collator, LMCollator, train_loader
from kdbench.methods.kd import KDParams, kd_loss
from kdbench.runner import make_step, model_inputs

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


def run_teacher(teacher, calls=None):
    def run(batch):
        if calls is not None:
            calls.append(batch["example_index"].tolist())
        return teacher(**model_inputs(batch))
    return run


def layout_of(features, kind, k, temperature=1.0, classes=0):
    lengths = tuple(len(f["input_ids"]) for f in features)
    return teacher_outputs.Layout(kind, lengths, classes=classes, k=k, temperature=temperature)


def open_store(tmp_path, layout, name="entry", log=None):
    return teacher_outputs.open_entry(tmp_path / name, {"test": name}, layout, log or (lambda m: None))[0]


@pytest.mark.parametrize("side", ["right", "left"])
def test_sparse_kd_from_the_cache_equals_dense_kd_at_k_equals_v(tmp_path, side):
    teacher, student = tiny_lm(0), tiny_lm(1)
    features = lm_features()
    collate = LMCollator(0, side)
    store = open_store(tmp_path, layout_of(features, "topk", VOCAB, 2.0))
    params = KDParams(temperature=2.0, alpha=1.0)
    for _ in range(2):  # the first pass fills the entry, the second reads it
        for batch in train_loader(features, collate, 4, seed=0):
            out = student(**model_inputs(batch))
            with torch.no_grad():
                live = teacher(**model_inputs(batch))
            cached = store.batch(batch, run_teacher(teacher))
            sparse, _ = kd_loss(make_step(out, cached.aligned(batch), batch, False), params)
            dense, _ = kd_loss(make_step(out, TeacherOut.of(live, batch), batch, False), params)
            # the only difference: the cache keeps the teacher's logits in fp16 (relative rounding <= 2^-11);
            # sparse_forward_kl itself equals the dense KL at k = V to 1e-5 in fp32 (test_chunked_losses.py)
            torch.testing.assert_close(sparse, dense, rtol=1e-3, atol=1e-6)
            grad_sparse = torch.autograd.grad(sparse, out.logits, retain_graph=True)[0]
            grad_dense = torch.autograd.grad(dense, out.logits)[0]
            torch.testing.assert_close(grad_sparse, grad_dense, rtol=1e-3, atol=1e-6)
    assert store.stats.rows_filled == len(features) and store.stats.rows_read == 0


def test_top_k_below_v_keeps_the_exact_top_k_and_the_full_lse(tmp_path):
    teacher = tiny_lm(0)
    features = lm_features(4)
    store = open_store(tmp_path, layout_of(features, "topk", 5, 1.5))
    batch = LMCollator(0, "right")(features)
    batch["example_index"] = torch.arange(len(features))
    cached = store.batch(batch, run_teacher(teacher))
    with torch.no_grad():
        logits = teacher(**model_inputs(batch)).logits
    real = batch["attention_mask"].bool()
    top = logits.topk(5, dim=-1)
    assert torch.equal(cached.topk.indices[real], top.indices[real])
    torch.testing.assert_close(cached.topk.values[real].float(), top.values[real], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(cached.topk.lse[real], torch.logsumexp(logits / 1.5, -1)[real], rtol=1e-5, atol=1e-5)


def classifier():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32)).eval()


def test_classification_entries_hold_the_live_logits(tmp_path):
    teacher = classifier()
    features = [{"input_ids": [1] + list(range(2, 4 + i)), "labels": i % 2} for i in range(9)]
    store = open_store(tmp_path, layout_of(features, "logits", 0, classes=2))
    for _ in range(2):
        for batch in train_loader(features, Collator(0, False), 4, seed=1):
            with torch.no_grad():
                live = teacher(**model_inputs(batch)).logits
            torch.testing.assert_close(store.batch(batch, run_teacher(teacher)).logits, live, rtol=1e-5, atol=1e-6)
    assert store.stats.rows_filled == 9


def test_rows_are_filled_when_first_drawn_and_read_afterwards(tmp_path):
    teacher, features, collate = tiny_lm(0), lm_features(10), LMCollator(0, "right")
    layout = layout_of(features, "topk", 5)
    calls = []
    first = open_store(tmp_path, layout)
    batches = list(train_loader(features, collate, 4, seed=3))
    out_first = first.batch(batches[0], run_teacher(teacher, calls))
    first.close()
    assert calls == [batches[0]["example_index"].tolist()]  # only the drawn examples went through the teacher
    assert first.meta()["rows_in_entry"] == 4 and first.meta()["rows_total"] == 10
    second = open_store(tmp_path, layout)  # another run (method, seed) on the same entry
    out_second = second.batch(batches[0], run_teacher(teacher, calls))
    assert len(calls) == 1 and second.stats.rows_read == 4 and second.stats.rows_filled == 0
    assert torch.equal(out_first.topk.values, out_second.topk.values)
    assert torch.equal(out_first.topk.lse, out_second.topk.lse)
    second.batch(batches[1], run_teacher(teacher, calls))
    assert len(calls) == 2 and second.stats.rows_filled == len(batches[1]["example_index"])
    second.batch(batches[2], run_teacher(teacher, calls))
    second.close()
    said = []
    open_store(tmp_path, layout, log=said.append)  # full now: the log says so, not "the rest are computed"
    assert said[-1].endswith(": all 10 examples filled, nothing to compute")


@pytest.mark.parametrize("kind", ["topk", "logits"])
def test_a_damaged_row_is_detected_and_recomputed_never_read(tmp_path, kind):
    if kind == "topk":
        teacher, features, collate = tiny_lm(0), lm_features(4), LMCollator(0, "right")
        layout, target = layout_of(features, "topk", 5), "values.npy"
    else:
        teacher, collate = classifier(), Collator(0, False)
        features = [{"input_ids": [1, 2, 3 + i], "labels": i % 2} for i in range(4)]
        layout, target = layout_of(features, "logits", 0, classes=2), "logits.npy"
    batch = collate(features)
    batch["example_index"] = torch.arange(4)
    store = open_store(tmp_path, layout)
    good = store.batch(batch, run_teacher(teacher))
    store.close()
    del store
    path = tmp_path / "entry" / target
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last example's stored bytes
    path.write_bytes(bytes(data))
    messages, calls = [], []
    again = open_store(tmp_path, layout, log=messages.append)
    out = again.batch(batch, run_teacher(teacher, calls))
    assert again.stats.rows_damaged == 1 and again.stats.damaged_examples == [3]
    assert calls == [[3]] and any("does not match its hash" in m for m in messages)  # the damaged row only
    for got, expected in ((out.topk.values, good.topk.values), (out.topk.indices, good.topk.indices),
                          (out.topk.lse, good.topk.lse)) if kind == "topk" else ((out.logits, good.logits),):
        # recomputed, not the flipped bytes (a batch of one row may round differently from a batch of four)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert again.stats.rows_filled == 1 and again.stats.rows_read == 3


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest", "other lengths"])
def test_a_damaged_entry_is_detected_and_created_anew(tmp_path, damage):
    teacher, features, collate = tiny_lm(0), lm_features(4), LMCollator(0, "right")
    layout = layout_of(features, "topk", 5)
    batch = collate(features)
    batch["example_index"] = torch.arange(4)
    store = open_store(tmp_path, layout)
    store.batch(batch, run_teacher(teacher))
    store.close()
    del store
    target = tmp_path / "entry" / "values.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-8])
    elif damage == "delete":
        target.unlink()
    elif damage == "manifest":
        (tmp_path / "entry" / "manifest.json").write_text("{")
    else:  # the same key but other example lengths (data changed under an identical key): never misaligned
        layout = layout_of(lm_features(5), "topk", 5)
    manifest, problem = teacher_outputs.check(tmp_path / "entry", layout)
    assert manifest is None and problem
    messages = []
    again = open_store(tmp_path, layout, log=messages.append)
    assert "damaged" in messages[0] and again.meta()["rows_in_entry"] == 0
    assert teacher_outputs.check(tmp_path / "entry", layout)[0] is not None


class Tokenizer:
    def __init__(self, name="tok", size=10):
        self.name_or_path, self.size = name, size

    def __len__(self):
        return self.size


def _parts(cfg=None, data=None, kind="topk", k=64, temperature=1.0, weights=None, tokenizer=None):
    from kdbench.teacher.weights import teacher_key

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
    assert main(["run", *base, "seed=1", "method.alpha=0.9"]) == 0  # another method, the same examples drawn
    assert main(["run", *base, "seed=1", "teacher_cache=false"]) == 0
    assert main(["run", *base, "seed=1", "method.divergence=rkl"]) == 0
    out = capsys.readouterr().out
    records = sorted((json.loads(p.read_text()) for p in (tmp_path / "perplexity_tiny").glob("*.json")),
                     key=lambda r: r["created_at"] + r["run_id"])
    used = [r["teacher_outputs"]["wikitext2"] for r in records]
    assert [u["used"] for u in used] == [True, True, False, False]
    assert used[1]["hit"] is True and used[1]["rows_filled"] == 0 and used[1]["rows_read"] > 0
    assert used[1]["rows_read"] == used[0]["rows_read"] + used[0]["rows_filled"]
    assert {u.get("why") for u in used[2:]} == {"teacher_cache=false", "kd with these params needs the dense LM teacher"}
    assert "examples read from the cache, 0 computed" in out
    assert all(r["status"] == "complete" for r in records)


def bert(layers=4, heads=4, seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=32, attn_implementation="eager")
    return BertForSequenceClassification(config).eval()


def test_fakd_features_are_stored_for_the_mapped_layers_only_and_equal_the_live_teacher(tmp_path):
    from kdbench.methods.fakd import FAKDParams, fakd_teacher_layers

    teacher, student = bert(layers=4, heads=4), bert(layers=2, heads=2, seed=1)
    hidden, attention = fakd_teacher_layers(FAKDParams(), student.config, teacher.config)
    assert (hidden, attention) == ((0, 2, 4), (1, 3))  # uniform map 1→2, 2→4, plus the embeddings
    assert fakd_teacher_layers(FAKDParams(beta_attn=0), student.config, teacher.config) == ((0, 2, 4), ())
    features = [{"input_ids": [1] + list(range(2, 3 + i % 6)), "labels": i % 2} for i in range(8)]
    layout = teacher_outputs.Layout("logits", tuple(len(f["input_ids"]) for f in features), classes=2,
                                    hidden_layers=hidden, attention_layers=attention, hidden_size=16, heads=4)
    store = open_store(tmp_path, layout)
    assert sorted(store.arrays) == ["attention_1", "attention_3", "hidden_0", "hidden_2", "hidden_4", "logits",
                                    "row_hash"]

    def live(batch):
        return teacher(**model_inputs(batch), output_hidden_states=True, output_attentions=True)
    for _ in range(2):  # filled, then read
        for batch in train_loader(features, Collator(0, False), 3, seed=2):
            with torch.no_grad():
                ref = live(batch)
            got = store.batch(batch, live)
            real = batch["attention_mask"].bool()
            torch.testing.assert_close(got.logits, ref.logits, rtol=1e-5, atol=1e-6)
            for layer in range(5):
                if layer not in hidden:
                    assert got.hidden_states[layer] is None
                    continue
                # fp16 storage: relative rounding <= 2^-11; padded positions are 0 (never read by the losses)
                torch.testing.assert_close(got.hidden_states[layer][real].float(), ref.hidden_states[layer][real],
                                           rtol=1e-3, atol=1e-3)
                assert (got.hidden_states[layer][~real] == 0).all()
            for layer in attention:
                rows = real[:, None, :, None] & real[:, None, None, :]
                a_got, a_ref = got.attentions[layer].float(), ref.attentions[layer]
                torch.testing.assert_close(a_got.masked_fill(~rows, 0), a_ref.masked_fill(~rows, 0), rtol=1e-3,
                                           atol=1e-3)
    assert store.stats.rows_filled == 8 and store.stats.rows_read == 0


def test_fakd_loss_from_cached_features_equals_the_live_loss(tmp_path):
    from kdbench.methods.fakd import FAKDParams, build_aligner, fakd_teacher_layers, fakd_loss

    teacher, student = bert(layers=4, heads=4), bert(layers=2, heads=2, seed=1)
    params = FAKDParams()
    aligner = build_aligner(params, student.config, teacher.config)
    hidden, attention = fakd_teacher_layers(params, student.config, teacher.config)
    features = [{"input_ids": [1] + list(range(2, 3 + i % 6)), "labels": i % 2} for i in range(6)]
    layout = teacher_outputs.Layout("logits", tuple(len(f["input_ids"]) for f in features), classes=2,
                                    hidden_layers=hidden, attention_layers=attention, hidden_size=16, heads=4)
    store = open_store(tmp_path, layout)
    flags = {"output_hidden_states": True, "output_attentions": True}
    for batch in train_loader(features, Collator(0, False), 3, seed=0):
        out = student(**model_inputs(batch), **flags)
        with torch.no_grad():
            ref = teacher(**model_inputs(batch), **flags)
        cached = store.batch(batch, lambda b: teacher(**model_inputs(b), **flags))
        live_loss, live_parts = fakd_loss(make_step(out, TeacherOut.of(ref, batch), batch, False), params, aligner)
        cached_loss, cached_parts = fakd_loss(make_step(out, cached.aligned(batch), batch, False), params, aligner)
        torch.testing.assert_close(cached_loss, live_loss, rtol=1e-3, atol=1e-5)
        assert cached_parts.keys() == live_parts.keys()
        g_cached = torch.autograd.grad(cached_loss, out.logits, retain_graph=True)[0]
        g_live = torch.autograd.grad(live_loss, out.logits, retain_graph=True)[0]
        torch.testing.assert_close(g_cached, g_live, rtol=1e-3, atol=1e-6)


def test_a_fakd_run_reads_the_features_a_first_run_stored(tmp_path, data_root, cache_dir):
    base = ["run", "suite=glue_enc_tiny", "method=fakd", "data.max_eval_examples=16", f"data_dir={data_root}",
            f"cache_dir={cache_dir}", "seed=7"]
    assert main([*base, f"results_dir={tmp_path / 'a'}"]) == 0
    assert main([*base, f"results_dir={tmp_path / 'b'}"]) == 0
    first, second = (json.loads(next((tmp_path / d / "glue_enc_tiny").glob("*.json")).read_text())["teacher_outputs"]["sst2"]
                     for d in ("a", "b"))
    assert first["used"] and first["hidden_layers"] == [0, 3, 6] and first["attention_layers"] == [2, 5]
    assert second["rows_filled"] == 0 and second["rows_read"] == first["rows_read"] + first["rows_filled"] > 0


def eager_lm(layers: int, heads: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=64,
                         attn_implementation="eager")
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("side", ["right", "left"])
def test_fakd_on_a_small_vocabulary_lm_reads_cached_features_equal_to_the_live_teacher(tmp_path, side):
    """The char track's case: a causal LM whose vocabulary is cached per token also keeps the mapped
    layers' features, so fakd's teacher runs once per example; the loss and its gradient equal the live ones
    to the float16 rounding of the features (the logits stay float32)."""
    from kdbench.methods.fakd import FAKDParams, build_aligner, fakd_loss, fakd_teacher_layers

    teacher, student = eager_lm(layers=4, heads=4, seed=0), eager_lm(layers=2, heads=2, seed=1)
    params = FAKDParams(ce_weight=0.0, temperature=1.0, layernorm=True)
    aligner = build_aligner(params, student.config, teacher.config)
    hidden, attention = fakd_teacher_layers(params, student.config, teacher.config)
    assert (hidden, attention) == ((0, 2, 4), (1, 3))
    features = lm_features(8)
    layout = teacher_outputs.Layout("tokens", tuple(len(f["input_ids"]) for f in features), vocab=VOCAB,
                                    hidden_layers=hidden, attention_layers=attention, hidden_size=16, heads=4)
    store = open_store(tmp_path, layout)
    assert sorted(store.arrays) == ["attention_1", "attention_3", "hidden_0", "hidden_2", "hidden_4", "logits",
                                    "row_hash"]
    flags = {"output_hidden_states": True, "output_attentions": True}
    calls = []

    def live(batch):
        calls.append(len(batch["example_index"]))
        return teacher(**model_inputs(batch), **flags)
    for _ in range(2):  # the first pass fills the entry, the second reads it
        for batch in train_loader(features, LMCollator(0, side), 3, seed=4):
            out = student(**model_inputs(batch), **flags)
            with torch.no_grad():
                ref = teacher(**model_inputs(batch), **flags)
            cached = store.batch(batch, live)
            real = batch["attention_mask"].bool()
            torch.testing.assert_close(cached.logits[real], ref.logits[real])  # float32: exact
            for layer in hidden:
                torch.testing.assert_close(cached.hidden_states[layer][real].float(), ref.hidden_states[layer][real],
                                           rtol=1e-3, atol=1e-3)
            live_loss, live_parts = fakd_loss(make_step(out, TeacherOut.of(ref, batch), batch, False), params, aligner)
            cached_loss, cached_parts = fakd_loss(make_step(out, cached.aligned(batch), batch, False), params, aligner)
            assert live_parts["attn"] > 0 and live_parts["feat"] > 0 and live_parts["out"] > 0
            # float16 rounds each stored probability by <= 2^-11 of itself: an absolute error of order 1e-5 on the
            # attention KL, which is 2e-5 between these untrained models and about 0.57 in the char runs
            for part in ("feat", "attn", "out"):
                torch.testing.assert_close(cached_parts[part], live_parts[part], rtol=2e-3, atol=1e-4)
            grads = [torch.autograd.grad(loss, out.hidden_states[1], retain_graph=True)[0]
                     for loss in (cached_loss, live_loss)]
            # element-wise the rounding shows where student and teacher features nearly agree; as a whole the
            # gradient is the live one to the rounding's order
            assert (grads[0] - grads[1]).norm() <= 2e-3 * grads[1].norm()
    assert sum(calls) == len(features)  # the teacher ran once per example, on the first pass only
    assert store.stats.rows_filled == len(features)


def test_a_char_fakd_run_caches_the_teachers_features_and_a_second_run_reads_them(tmp_path, data_root, cache_dir):
    base = ["run", "suite=char_tiny", "method=fakd", f"data_dir={data_root}", f"cache_dir={cache_dir}", "seed=3"]
    assert main([*base, f"results_dir={tmp_path / 'a'}"]) == 0
    assert main([*base, f"results_dir={tmp_path / 'b'}"]) == 0
    first, second = (json.loads(next((tmp_path / d / "char_tiny").glob("*.json")).read_text())
                     for d in ("a", "b"))
    used = [r["teacher_outputs"]["shakespeare"] for r in (first, second)]
    assert used[0]["used"] and used[0]["kind"] == "tokens" and used[0]["hidden_layers"]
    assert used[1]["rows_filled"] == 0 and used[1]["rows_read"] == used[0]["rows_read"] + used[0]["rows_filled"] > 0
    assert second["metrics"] == first["metrics"]  # the same student from stored features as from fresh ones
