"""The fine-tuned-teacher cache key changes whenever anything that shapes the teacher changes."""

from types import SimpleNamespace

import pytest

from kdbench.teacher import weights as teacher
from kdbench.config import resolve
from kdbench.data.glue_tasks import TASKS


def data(train="aaa", dev="bbb", task="sst2"):
    return SimpleNamespace(name=task, num_labels=TASKS[task].num_labels, train=SimpleNamespace(sha256=train),
                           evals={"dev": SimpleNamespace(sha256=dev)})


BASE_IDENTITY = {"name": "minilm-l6", "weights_sha256": "w1"}


def key(cfg=None, identity=BASE_IDENTITY, d=None):
    cfg = cfg or resolve({}, environ={})
    return teacher.teacher_key(teacher.key_parts(cfg, identity, d or data()))


@pytest.mark.parametrize(
    "change",
    [
        {"identity": {"name": "minilm-l6", "weights_sha256": "w2"}},
        {"identity": {"name": "other", "weights_sha256": "w1"}},
        {"d": data(task="rte")},
        {"d": data(train="changed")},
        {"d": data(dev="changed")},
        {"cfg": {"teacher_train.lr": "3e-5"}},
        {"cfg": {"teacher_train.max_steps": "10"}},
        {"cfg": {"teacher_train.seed": "1"}},
        {"cfg": {"teacher_train.max_length": "64"}},
        {"cfg": {"teacher_train.batch_size": "8"}},
        {"cfg": {"data.max_train_examples": "100"}},
        {"cfg": {"data.max_eval_examples": "100"}},
        {"cfg": {"eval.max_tokens": "100"}},
        {"cfg": {"train.max_length": "64"}},  # the teacher's scores are computed at this length
        {"cfg": {"suite": "glue_enc_tiny"}},
    ],
)
def test_each_key_component_change_is_a_cache_miss(change):
    kwargs = dict(change)
    if "cfg" in kwargs:
        kwargs["cfg"] = resolve(kwargs["cfg"], environ={})
    assert key(**kwargs) != key()


def test_student_side_settings_do_not_invalidate_the_teacher():
    assert key(resolve({"method": "rlkd", "seed": "5", "train.lr": "1e-3", "train.max_steps": "9"}, environ={})) == key()


def weights_key(cfg=None, d=None):
    cfg = cfg or resolve({}, environ={})
    return teacher.teacher_key(teacher.weights_key_parts(cfg, BASE_IDENTITY, d or data()))


@pytest.mark.parametrize("change", [{"eval.batch_size": "3"}, {"eval.max_tokens": "100"}, {"data.max_eval_examples": "7"},
                                    {"train.max_length": "64"}])
def test_eval_side_settings_share_the_fine_tuned_weights(change):
    """bleu and cer (same task, same training data) fine-tune the teacher once; only the scores differ."""
    assert weights_key(resolve(change, environ={})) == weights_key()
    assert key(resolve(change, environ={})) != key()


def test_eval_data_change_keeps_weights_but_rescores():
    assert weights_key(d=data(dev="changed")) == weights_key()
    assert weights_key(d=data(train="changed")) != weights_key()


def test_score_entry_round_trip_and_unreadable_entry_is_a_miss(tmp_path):
    path = teacher.scores_file(tmp_path, "sst2", {"a": 1})
    assert teacher.load_scores(path) is None
    teacher.save_scores(path, {"metrics": {"accuracy": 90.0}})
    assert teacher.load_scores(path) == {"metrics": {"accuracy": 90.0}}
    path.write_text('{"metrics": ')  # truncated by a crash elsewhere: recomputed, never read
    assert teacher.load_scores(path) is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_weights_entry_is_rebuilt_never_loaded(tmp_path, damage):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    entry = tmp_path / "teachers" / "sst2-abc"
    teacher.save(entry, BertForSequenceClassification(config), {"steps": 4})
    assert teacher.load_cached(entry) is not None
    weights = entry / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        weights.unlink()
    messages = []
    assert teacher.load_cached(entry, messages.append) is None
    assert "damaged" in messages[0] and not entry.exists()


@pytest.fixture
def on_a_bf16_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_a_teacher_fine_tuned_under_bf16_is_another_cache_entry(on_a_bf16_gpu):
    """On a GPU device=auto fine-tunes and runs the teacher under bf16 autocast: not the fp32 teacher a CPU
    wrote into a shared cache. precision=fp32 there is the fp32 teacher, under the key it always had."""
    fp32 = weights_key(resolve({"device": "cpu"}, environ={}))
    assert weights_key(resolve({}, environ={})) != fp32
    assert weights_key(resolve({"precision": "fp32"}, environ={})) == fp32
    assert "mixed_precision" not in teacher.weights_key_parts(resolve({"device": "cpu"}, environ={}), BASE_IDENTITY, data())
