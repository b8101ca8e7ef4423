"""What makes two records comparable on a leaderboard (kdbench.leaderboard.group_key)."""
import copy

from kdbench.leaderboard import group_key


def _record(mixed_precision: str | None) -> dict:
    record = {
        "suite": "glue", "suite_version": "2", "teacher": {"name": "smollm2-135m"}, "student": {"name": "smollm2-6l"},
        "config": {"train": {"max_steps": 800, "batch_size": 16}, "teacher_train": {"max_steps": 800, "batch_size": 16},
                   "data": {"max_train_examples": None, "max_eval_examples": None}},
    }
    if mixed_precision is not None:
        record["device"] = {"type": "cuda:0" if mixed_precision != "no" else "cpu", "mixed_precision": mixed_precision}
    return record


def test_bf16_autocast_runs_form_their_own_table_apart_from_full_precision_ones():
    cpu, gpu = _record("no"), _record("bf16")
    assert group_key(gpu) != group_key(cpu)
    assert group_key(gpu)[-1] == "bf16 mixed precision"


def test_full_precision_and_records_from_before_the_device_field_share_one_table():
    cpu, old = _record("no"), _record(None)
    fp32_gpu = copy.deepcopy(cpu)
    fp32_gpu["device"]["type"] = "cuda:0"  # the device alone does not change the recipe
    assert group_key(cpu) == group_key(old) == group_key(fp32_gpu)
