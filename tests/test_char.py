"""The char suite: the 66-token tokenizer, the split and continuations, the exact teacher cache, a tiny run."""

import json
import math

import pytest
import torch

from kdbench.cli import main
from kdbench.errors import KdbenchError
from kdbench.metrics import unigram_nll
from kdbench.models.char import CHARS, char_tokenizer, check_text
from kdbench.suites.char import continuations


def test_one_token_per_character_in_nanogpts_order():
    tokenizer = char_tokenizer()
    assert len(tokenizer) == 66 and tokenizer.pad_token_id == 65
    ids = tokenizer("First Citizen:\n")["input_ids"]
    assert ids == [CHARS.index(c) for c in "First Citizen:\n"] and ids[:2] == [18, 47]  # 'F', 'i' as in nanoGPT
    assert tokenizer.decode(ids) == "First Citizen:\n"


def test_a_character_outside_the_vocabulary_is_named():
    with pytest.raises(KdbenchError, match="character 'é' at offset 3"):
        check_text("caf\u00e9", "input.txt")


def test_continuations_are_evenly_spaced_and_start_at_lines():
    text = "".join(f"line {i:03d} of the play\n" for i in range(200))
    pairs = continuations(text, 5, 16, 8)
    assert len(pairs) == 5 and all(len(p) == 16 and len(c) == 8 for p, c in pairs)
    assert all(p.startswith("line ") for p, _ in pairs[:-1])
    with pytest.raises(KdbenchError, match="shorter than one prompt"):
        continuations("short", 3, 16, 8)


def test_unigram_baseline_by_hand():
    # train "aab" -> counts a:2, b:1, c:0 over V=3: p(a)=3/6, p(b)=2/6, p(c)=1/6; eval "xab" scores "a","b"
    nll = unigram_nll([0, 0, 1], [2, 0, 1], 3)
    assert nll == pytest.approx(-(math.log(3 / 6) + math.log(2 / 6)) / 2)


def run_char(tmp_path, data_root, cache_dir, method, *extra):
    out = tmp_path / method
    assert main(["run", "suite=char_tiny", f"method={method}", f"data_dir={data_root}", f"results_dir={out}",
                 f"cache_dir={cache_dir}", *extra]) == 0
    return json.loads(next(out.glob("char_tiny/*.json")).read_text())


def test_char_runs_every_method_with_the_exact_teacher_cache(tmp_path, data_root, cache_dir):
    none = run_char(tmp_path, data_root, cache_dir, "none")
    metrics = none["metrics"]["shakespeare"]
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"])) and 0 <= metrics["cer"] <= 200
    trivial = none["trivial"]["shakespeare"]
    assert trivial["empty output"]["cer"] == 100.0 and 2.5 < trivial["unigram (training characters)"]["loss"] < 4.2
    assert none["data"]["shakespeare"]["validation"].startswith("the last 4 blocks")
    for method in ("kd", "rlkd", "fakd"):
        record = run_char(tmp_path, data_root, cache_dir, method)
        assert record["status"] == "complete"
        if method != "fakd":  # 66 outputs: the full per-token distribution is cached, exact for every method
            assert record["teacher_outputs"]["shakespeare"]["kind"] == "tokens"
        if method == "rlkd":
            assert record["method_checks"]["shakespeare"] == {"effective_k": 5, "rank_term": "live"}


def test_cached_token_logits_give_the_same_student_as_the_live_teacher(tmp_path, data_root, cache_dir):
    live = run_char(tmp_path / "live", data_root, cache_dir, "rlkd", "teacher_cache=false")
    cached = run_char(tmp_path / "cached", data_root, cache_dir, "rlkd")
    assert live["student_sha256"] == cached["student_sha256"]


def test_the_dense_token_store_round_trips_exactly(tmp_path):
    from kdbench.teacher.cache import Layout, open_entry

    layout = Layout("tokens", (3, 2), vocab=5)
    store, _ = open_entry(tmp_path / "entry", {"k": 1}, layout, log=lambda m: None)
    z = torch.randn(2, 4, 5)
    batch = {"example_index": torch.tensor([0, 1]), "input_ids": torch.zeros(2, 4, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])}
    got = store.batch(batch, lambda b: type("O", (), {"logits": z})())
    mask = batch["attention_mask"].bool()
    assert torch.equal(got.logits[mask], z[mask]) \
        and torch.equal(got.aligned({"labels": torch.zeros(2, 4)}).logits, got.logits[:, :-1])
    again = store.batch(batch, lambda b: pytest.fail("the teacher ran for stored rows"))
    assert torch.equal(again.logits, got.logits)


def test_gkd_trains_on_its_own_samples_and_the_record_says_how_many(tmp_path, data_root, cache_dir):
    record = run_char(tmp_path, data_root, cache_dir, "gkd", "train.max_steps=6", "method.lmbda=0.5")
    on_policy = record["on_policy"]["shakespeare"]
    sources = on_policy["sources"]
    assert sum(sources.values()) == 6 and sources["student"] + sources["gold"] == 6 and sources["student"] > 0
    assert on_policy["samples"] == sources["student"] * record["config"]["train"]["batch_size"]
    assert on_policy["sampled_tokens"] > 0 and on_policy["policy"]["lmbda"] == 0.5
    assert 0 < record["timings"]["generation_s"] <= record["timings"]["train_s"]
    again = run_char(tmp_path / "again", data_root, cache_dir, "gkd", "train.max_steps=6", "method.lmbda=0.5")
    assert again["student_sha256"] == record["student_sha256"]  # the samples are seeded: the same student
    from tests.conftest import as_committed
    results = as_committed(tmp_path / "gkd")
    assert main(["leaderboard", "suite=char_tiny", f"results_dir={results}"]) == 0
    board = (results / "leaderboard_char_tiny.md").read_text()
    assert "of which sampling s" in board  # the cost columns show what sampling took


def test_distillm_samples_then_replays_once_its_buffer_is_full(tmp_path, data_root, cache_dir):
    record = run_char(tmp_path, data_root, cache_dir, "distillm", "train.max_steps=8", "method.init_threshold=1",
                      "method.replay_size=4")
    on_policy = record["on_policy"]["shakespeare"]
    assert on_policy["sources"]["student"] >= 1 and on_policy["sources"]["gold"] == 0
    assert on_policy["sources"]["student"] + on_policy["sources"]["replay"] == 8
    assert on_policy["policy"]["theta"] == 1.0 and on_policy["policy"]["buffer"] == 4


def test_seqkd_generates_the_teachers_responses_once_and_a_second_seed_reads_them(tmp_path, data_root, cache_dir):
    first = run_char(tmp_path, data_root, cache_dir, "seqkd", "train.max_steps=3")
    filled = first["on_policy"]["shakespeare"]["teacher_responses"]
    assert filled["rows_filled"] > 0 and first["on_policy"]["shakespeare"]["sources"]["teacher"] == 3
    again = run_char(tmp_path / "again", data_root, cache_dir, "seqkd", "train.max_steps=3")
    read = again["on_policy"]["shakespeare"]["teacher_responses"]
    assert read["rows_read"] == filled["rows_filled"] and read["rows_filled"] == 0
    assert again["student_sha256"] == first["student_sha256"]
