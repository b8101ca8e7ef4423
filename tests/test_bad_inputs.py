"""The bad-input corpus: each bad input gets one readable line, exit code 2, no traceback, no partial result.

Each case builds its inputs under tmp_path and names the text the message must contain.
"""

import errno
import shutil
from pathlib import Path

import pytest

from kdbench.cli import main

SST2_HEADER = "sentence\tlabel\n"


def glue_root(tmp_path, task="SST-2", train=None, dev=None, raw_train: bytes | None = None):
    """A data root holding one GLUE task; real-looking defaults for whichever file is not given."""
    folder = tmp_path / "data" / "glue" / task
    folder.mkdir(parents=True)
    ok = SST2_HEADER + "".join(f"good movie {i}\t1\nbad movie {i}\t0\n" for i in range(8))
    if raw_train is not None:
        (folder / "train.tsv").write_bytes(raw_train)
    else:
        (folder / "train.tsv").write_text(ok if train is None else train)
    (folder / "dev.tsv").write_text(ok if dev is None else dev)
    return tmp_path / "data"


def run_args(tmp_path, data, *extra):
    return ["run", "suite=glue_enc_tiny", "method=none", f"data_dir={data}", f"results_dir={tmp_path / 'results'}",
            f"cache_dir={tmp_path / 'cache'}", *extra]


def cli(*args):
    return lambda tmp_path, real: list(args)


def with_real_data(*extra):
    return lambda tmp_path, real: run_args(tmp_path, real, *extra)


def with_train(text=None, raw=None, task="SST-2", suite_args=()):
    def build(tmp_path, real):
        data = glue_root(tmp_path, task=task, train=text, raw_train=raw)
        return run_args(tmp_path, data, *suite_args)
    return build


def stsb_train(text):
    def build(tmp_path, real):
        ok = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        data = glue_root(tmp_path, task="STS-B", train=text, dev=ok + "0\tg\tf\ty\to\ts\ts\ta\tb\t1.0\n")
        return run_args(tmp_path, data, "tasks=[stsb]")
    return build


def char_text(text):
    def build(tmp_path, real):
        (tmp_path / "data" / "tinyshakespeare").mkdir(parents=True)
        (tmp_path / "data" / "tinyshakespeare" / "input.txt").write_text(text, encoding="utf-8")
        return ["run", "suite=char_tiny", f"data_dir={tmp_path / 'data'}", f"results_dir={tmp_path / 'results'}",
                f"cache_dir={tmp_path / 'cache'}"]
    return build


def not_a_model(tmp_path, real):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    return run_args(tmp_path, real, f"student={folder}")


def other_vocab_student(tmp_path, real):
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / "other-vocab"
    BertForSequenceClassification(BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=32, num_labels=2)).save_pretrained(folder)
    return run_args(tmp_path, real, f"student={folder}", "method=kd")


def results_dir_is_a_file(tmp_path, real):
    blocker = tmp_path / "results-file"
    blocker.write_text("not a folder")
    return ["run", "suite=glue_enc_tiny", "method=none", f"data_dir={real}", f"results_dir={blocker}",
            f"cache_dir={tmp_path / 'cache'}"]


def broken_scitldr(tmp_path, real):
    data = tmp_path / "data"
    shutil.copytree(real / "multi30k", data / "multi30k")
    (data / "scitldr-a").mkdir(parents=True)
    (data / "scitldr-a" / "train.jsonl").write_text('{"source": ["a"], "target": ["b"]}\n{"source": [\n')
    (data / "scitldr-a" / "test.jsonl").write_text('{"source": ["a"], "target": ["b"]}\n')
    return ["run", "suite=rouge_tiny", "method=none", "tasks=[scitldr]", f"data_dir={data}",
            f"results_dir={tmp_path / 'results'}", f"cache_dir={tmp_path / 'cache'}"]


def corrupted_baseline(tmp_path, real):
    (tmp_path / "results" / "glue_enc_tiny").mkdir(parents=True)
    return ["check", f"results_dir={tmp_path / 'results'}", f"baselines_dir={tmp_path / 'nowhere'}", "floor=abc"]


def empty_results(tmp_path, real):
    (tmp_path / "results").mkdir()
    return ["leaderboard", f"results_dir={tmp_path / 'results'}"]


def corrupted_checkpoint(tmp_path, real):
    """A checkpoint left for exactly this run's config whose state.pt is garbage."""
    from kdbench.config import parse_overrides, resolve
    from kdbench.experiment import checkpointer, suite_of

    args = run_args(tmp_path, real)
    cfg = resolve(parse_overrides(args[1:]), environ={})
    suite, _ = suite_of(cfg)
    data = suite.load("sst2", real, cfg.data.max_train_examples, cfg.data.max_eval_examples)
    suite.hold_out(data, cfg.data.val_examples)
    ckpt = checkpointer(cfg, data, tmp_path / "old-record.json")
    ckpt.folder.mkdir(parents=True)
    ckpt.state_file.write_bytes(b"not a checkpoint")
    ckpt.meta_file.write_text('{"format": 1, "step": 2, "sha256": "0", "record": ""}')
    return args


CASES = [
    # CLI and config
    ("unknown command", cli("runn"), "unknown command 'runn'"),
    ("argument without =", cli("run", "suite"), "expected key=value"),
    ("unknown key", cli("run", "trian.max_steps=3"), "unknown key"),
    ("wrong type", cli("run", "train.max_steps=abc"), "train.max_steps expects an integer"),
    ("negative max_steps", cli("run", "train.max_steps=-1"), "max_steps"),
    ("negative teacher budget", cli("run", "teacher_train.max_steps=-5"), "max_steps"),
    ("lr not a number", cli("run", "train.lr=fast"), "train.lr expects a number"),
    ("unknown method", cli("run", "method=kdd"), "unknown method 'kdd'"),
    ("unknown suite", cli("run", "suite=gleu"), "gleu"),
    ("unknown task", cli("run", "tasks=[sst3]"), "sst3"),
    ("unknown method param", cli("run", "method=kd", "method.kk=3"), "kk"),
    ("bad divergence", cli("run", "method=kd", "method.divergence=kl2"), "kl2"),
    ("gkd lambda outside [0, 1]", cli("run", "suite=char_tiny", "method=gkd", "method.lmbda=1.5"), "method.lmbda"),
    ("gkd generation length 0", cli("run", "suite=char_tiny", "method=gkd", "method.max_new_tokens=0"),
     "generation length of 0"),
    ("distillm unknown schedule", cli("run", "suite=char_tiny", "method=distillm", "method.schedule=cosine"),
     "unknown method.schedule 'cosine'"),
    ("on-policy on a classification suite", cli("run", "suite=glue_enc", "method=gkd"), "has no responses to sample"),
    ("seqkd on a classification suite", cli("run", "suite=glue", "method=seqkd"), "use a text or generation suite (bleu,"),
    ("AKL head mass 0", cli("run", "method=kd", "method.divergence=akl", "method.mu=0"), "method.mu (AKL's head mass)"),
    ("JSD beta above 1", cli("run", "method=rlkd", "method.logits_loss=jsd", "method.beta=1.5"), "method.beta must be"),
    ("stride >= window", cli("run", "suite=perplexity_tiny", "eval.window=64", "eval.stride=64"), "stride"),
    ("unknown padding side", cli("run", "data.padding_side=middle"), "middle"),
    ("unknown device", cli("run", "device=tpu"), "tpu"),
    ("unknown nan policy", cli("run", "nan_policy=ignore"), "nan_policy"),
    ("unknown student_init", cli("run", "student_init=random"), "unknown student_init 'random'"),
    ("unknown train.keep", cli("run", "train.keep=middle"), "keep must be one of last, best"),
    ("student_init=teacher for a random student", with_real_data("student_init=teacher", "student=bert-4l-192"),
     "needs a student preset that keeps a subset of its teacher's layers"),
    ("student_init=teacher for another teacher's layers", with_real_data("student_init=teacher", "teacher=bert-4l-192"),
     "keeps layers of 'minilm-l6', but the teacher is 'bert-4l-192'"),
    ("bad decoding", cli("run", "suite=bleu_tiny", "eval.decoding=beam"), "beam"),
    ("sweep without methods", cli("sweep", "methods=[]"), "at least one method"),
    ("sweep with method=", cli("sweep", "method=kd"), "methods=[kd]"),
    ("leaderboard unknown key", cli("leaderboard", "sute=glue"), "unknown key 'sute'"),
    ("leaderboard missing dir", cli("leaderboard", "results_dir=/nonexistent/results"), "does not exist"),
    ("check bad floor", corrupted_baseline, "floor expects a number"),
    ("code in a config value", cli("run", "train.lr=__import__('os').system('touch /tmp/kdbench-pwned')"),
     "train.lr expects a number"),
    ("suite name escaping results_dir", cli("run", "suite=../../etc/passwd"), "not a plain name"),
    ("leaderboard suite escaping results_dir", cli("leaderboard", "suite=../outside"), "not a plain name"),
    ("negative checkpoint_every", cli("run", "checkpoint_every=-1"), "checkpoint_every must be >= 0"),
    ("negative cache bound", cli("run", "cache_max_gb=-1"), "cache_max_gb must be >= 0"),
    ("cache bound not a number", cli("run", "cache_max_gb=lots"), "cache_max_gb"),
    ("unknown teacher placement", cli("run", "teacher_placement=everywhere"), "unknown teacher_placement"),
    ("malformed teacher_max_memory", cli("run", "teacher_max_memory=gpu0:3GiB"), "DEVICE=SIZE"),
    ("leaderboard with no records", empty_results, "no complete result records"),
    ("method.k larger than the vocabulary", with_real_data("suite=perplexity_tiny", "method=rlkd", "method.k=100000"),
     "larger than the vocabulary"),
    ("negative eval_every", cli("run", "eval_every=-1"), "eval_every must be >= 0"),
    ("no validation slice", cli("run", "data.val_examples=0"), "val_examples must be >= 1"),
    ("validation slice takes every training row", with_real_data("data.val_examples=64"), "would hold out all 64"),
    ("negative teacher_cache_k", cli("run", "teacher_cache_k=-1"), "teacher_cache_k must be >= 0"),
    ("negative top_layers", cli("run", "teacher_train.top_layers=-1"), "top_layers must be >= 0"),
    ("top_layers beyond the teacher's layers", with_real_data("teacher_train.top_layers=9"), "has 6 layers"),
    ("rlkd on a 2-class head", with_real_data("method=rlkd"), "rank term is a constant"),
    ("verbalizer for several tasks", cli("run", "suite=glue", "tasks=[sst2,stsb]", "data.verbalizer=[bad,good]"), "of one task"),
    ("verbalizer with the wrong word count", cli("run", "suite=glue", "tasks=[sst2]", "data.verbalizer=[bad,ok,good]"),
     "has 3 words but sst2 has 2 labels"),
    ("verbalizer word of several tokens", cli("run", "suite=glue", "tasks=[sst2]",
                                              "data.verbalizer=[terrible,wonderfully-good]"), "is not one token"),
    ("verbalizer on the encoder form", cli("run", "suite=glue_enc", "data.verbalizer=[bad,good]"), "causal-LM GLUE"),
    ("char continuation with no room for a prompt", cli("run", "suite=char_tiny", "eval.max_new_tokens=30"),
     "need at least 8"),
    ("char window longer than the training blocks", cli("run", "suite=char_tiny", "eval.window=64"), "eval.window=64"),
    ("too many char continuations", cli("run", "suite=char_tiny", "data.max_eval_examples=500"), "at most 100"),
    ("char text outside the vocabulary", char_text("To be, or not to be: caf\u00e9" * 100), "character 'é'"),
    ("calibrate with a method", cli("calibrate", "method=kd"), "calibrate trains method=none"),
    # data files
    ("data root does not exist", lambda t, r: run_args(t, "/nonexistent/data-root"), "does not exist"),
    ("empty TSV", with_train(text=""), "empty file"),
    ("header only", with_train(text=SST2_HEADER), "no data rows"),
    ("too few columns", with_train(text=SST2_HEADER + "just a sentence\n"), ":2: expected at least 2"),
    ("too many columns", with_train(text=SST2_HEADER + "a\tb\t1\n"), ":2: 3 tab-separated columns"),
    ("label out of range", with_train(text=SST2_HEADER + "a\t7\n"), "label '7' is out of range"),
    ("non-UTF-8 file", with_train(raw=SST2_HEADER.encode() + b"caf\xe9\t1\n"), "not UTF-8"),
    ("wrong header", with_train(text="text\tlabel\na\t1\n"), "header has no column"),
    ("non-numeric STS-B score", stsb_train("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                                           "sentence2\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\thigh\n"), "is not a number"),
    ("broken JSONL line", broken_scitldr, "broken JSON line"),
    # models
    ("student path is not a model", not_a_model, "not-a-model"),
    ("teacher/student vocabulary mismatch", other_vocab_student, "vocabulary of"),
    # results, checkpoints and caches
    ("results_dir is a file", results_dir_is_a_file, "results_dir"),
    ("corrupted checkpoint", corrupted_checkpoint, "is corrupted: state.pt is missing or does not match"),
]


@pytest.mark.parametrize("name,build,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line_and_exit_2(name, build, expected, tmp_path, data_root, capsys):
    code = main(build(tmp_path, data_root))
    out, err = capsys.readouterr()
    assert code == 2, (name, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    error_lines = [line for line in err.splitlines() if line.startswith("kdbench: error:")]
    assert len(error_lines) == 1 and expected in error_lines[0], err
    results = tmp_path / "results"
    assert not (results.is_dir() and list(results.rglob("*.json"))), "a partial result file was left"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_disk_full_while_writing_a_record_is_one_clear_error(tmp_path, data_root, cache_dir, monkeypatch, capsys):
    """The first record write fails with ENOSPC: exit 2, one line, and no record or temporary file left."""
    import os

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code = main(["run", "suite=glue_enc_tiny", "method=none", f"data_dir={data_root}", f"results_dir={tmp_path / 'r'}",
                 f"cache_dir={cache_dir}"])
    monkeypatch.setattr(os, "fsync", real_fsync)
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    assert not [p for p in Path(tmp_path / "r").rglob("*") if p.is_file()]
