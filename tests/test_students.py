"""Which records are one student, and which are variants of one method (kdbench.students)."""
from kdbench.students import newest_per_student, rows_by_variant, student_key


def _record(method="kd", seed=0, created="2026-11-30T00:00:00Z", **config):
    base = {"method": method, "seed": seed, "data_dir": "/data", "results_dir": "results", "eval_every": 0,
            "train": {"lr": 1e-3, "max_steps": 800}, "method_params": {"alpha": 0.5}}
    for key, value in config.items():
        if isinstance(value, dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return {"method": method, "seed": seed, "created_at": created, "config": base}


def test_paths_and_validation_cadence_do_not_make_another_student():
    a = _record()
    assert student_key(a["config"]) == student_key(_record(data_dir="../shared/data", eval_every=80,
                                                           results_dir="/tmp/r")["config"])
    assert student_key(a["config"]) != student_key(_record(seed=1)["config"])
    assert student_key(a["config"]) != student_key(_record(train={"lr": 3e-4})["config"])


def test_the_newest_record_of_a_student_wins_and_the_repeats_are_returned():
    old, new = _record(created="2026-11-30T01:00:00Z"), _record(data_dir="elsewhere", created="2026-11-30T02:00:00Z")
    other_seed = _record(seed=1)
    kept, repeats = newest_per_student([old, other_seed, new])
    assert kept == [other_seed, new] and repeats == [old]


def test_a_gpu_run_under_bf16_is_another_student_than_the_cpu_run_of_the_same_config():
    cpu = {**_record(created="2026-11-30T01:00:00Z"), "device": {"type": "cpu", "mixed_precision": None}}
    gpu = {**_record(created="2026-12-04T15:00:00Z"), "device": {"type": "cuda", "mixed_precision": "bf16"}}
    again = {**_record(created="2026-12-04T16:00:00Z"), "device": {"type": "cuda", "mixed_precision": "bf16"}}
    kept, repeats = newest_per_student([cpu, gpu, again])
    assert kept == [cpu, again] and repeats == [gpu]


def test_variants_of_one_method_are_separate_rows_labelled_by_what_differs():
    runs = [_record(seed=s, method_params={"alpha": a}, created=f"2026-11-30T0{s}:0{i}:00Z")
            for i, a in enumerate((0.5, 0.9)) for s in (0, 1)]
    none = _record(method="none", method_params={})
    rows = rows_by_variant(runs + [none])
    assert sorted(rows) == ["kd[alpha=0.5]", "kd[alpha=0.9]", "none"]
    assert [r["seed"] for r in rows["kd[alpha=0.9]"]] == [0, 1]
    assert rows_by_variant(runs[:2] + [none]) == {"kd": runs[:2], "none": [none]}  # one variant keeps the name


def test_a_key_set_in_only_some_records_labels_the_others_unset():
    rows = rows_by_variant([_record(), _record(seed=1, train={"warmup_ratio": 0.1})])
    assert sorted(rows) == ["kd[train.warmup_ratio=0.1]", "kd[train.warmup_ratio=unset]"]


def test_a_key_added_later_at_its_implicit_value_is_the_same_student_and_the_same_row():
    before = _record()  # written before train.keep and student_init existed
    after = _record(seed=1, student_init="pretrained", train={"keep": "last"})
    assert student_key(before["config"]) == student_key({**after["config"], "seed": 0})
    assert rows_by_variant([before, after]) == {"kd": [before, after]}
    best = _record(seed=2, train={"keep": "best"})  # another value is another student
    assert sorted(rows_by_variant([before, best])) == ["kd[train.keep=best]", "kd[train.keep=unset]"]


def test_the_sweep_counts_a_record_from_before_a_key_existed_as_done():
    from kdbench.results import LATER_KEYS, canonical_config, config_hash
    before = _record()["config"]
    after = {**before, "student_init": "pretrained", "train": {**before["train"], "keep": "last"},
             "teacher_train": {"keep": "last"}}
    assert config_hash({**before, "teacher_train": {}}) == config_hash(after)
    assert config_hash(before) != config_hash({**before, "student_init": "teacher"})
    assert after["train"]["keep"] == "last" and canonical_config(after) is not after  # the input stays as it was
    assert ("train", "keep") in LATER_KEYS


def test_with_its_suite_the_variant_a_plain_run_trains_keeps_the_method_name():
    fkl = [_record(seed=s, method_params={"divergence": "fkl"}) for s in (0, 1)]
    akl = _record(seed=0, method_params={"divergence": "akl"}, created="2026-11-30T05:00:00Z")
    assert sorted(rows_by_variant(fkl + [akl])) == ["kd[divergence=akl]", "kd[divergence=fkl]"]
    rows = rows_by_variant(fkl + [akl], "char")  # `kdbench run suite=char method=kd` trains divergence=fkl
    assert rows == {"kd": fkl, "kd[divergence=akl]": [akl]}
    # where the suite does not resolve (a plug-in's, gone), every variant is labelled as before
    assert sorted(rows_by_variant(fkl + [akl], "no_such_suite")) == ["kd[divergence=akl]", "kd[divergence=fkl]"]


def test_precision_fp32_on_a_gpu_adds_a_seed_to_the_cpu_table():
    """precision is keyed by what the run trained in (the record's device.mixed_precision), not by the setting:
    an fp32 GPU record of seed 2 is a row beside the CPU seeds, and the sweep counts its cell done."""
    from kdbench.results import config_hash

    cpu = {**_record(seed=0), "device": {"type": "cpu", "mixed_precision": "no"}}
    gpu = {**_record(seed=2, precision="fp32"), "device": {"type": "cuda", "mixed_precision": "no"}}
    assert list(rows_by_variant([cpu, gpu])) == ["kd"]
    assert config_hash(_record(seed=2, precision="fp32")["config"]) == config_hash(_record(seed=2)["config"])
    assert student_key(gpu["config"]) == student_key(_record(seed=2)["config"])
