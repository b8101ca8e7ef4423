"""student_init=teacher: a derived student starts from the fine-tuned teacher's layers and head."""

import json

import torch

from kdbench.cli import main
from kdbench.models.load import load_classifier, student_from_teacher


def test_the_student_takes_the_teachers_layers_at_the_uniform_map_and_its_head():
    teacher = load_classifier("minilm-l6", num_labels=2, regression=False, seed=0)
    with torch.no_grad():  # a "fine-tuned" teacher: every weight differs from the pretrained one
        for i, p in enumerate(teacher.parameters()):
            p.add_(0.01 * (i + 1))
    student = load_classifier("minilm-l6-2l", num_labels=2, regression=False, seed=1)
    student_from_teacher(student, teacher, 2)
    t_layers, s_layers = teacher.bert.encoder.layer, student.bert.encoder.layer
    for s_index, t_index in ((0, 2), (1, 5)):  # layers 3 and 6 of 6
        for (name, sp), tp in zip(s_layers[s_index].named_parameters(), t_layers[t_index].parameters()):
            assert torch.equal(sp, tp), name
    for part in ("classifier", "bert.embeddings", "bert.pooler"):
        for (name, sp), tp in zip(student.get_submodule(part).named_parameters(),
                                  teacher.get_submodule(part).parameters()):
            assert torch.equal(sp, tp), f"{part}.{name}"
    assert all(p.requires_grad for p in student.parameters())
    assert student.config.num_hidden_layers == 2


def test_a_run_records_the_init_and_starts_from_other_weights(tmp_path, data_root, cache_dir):
    # zero student steps: the student is the teacher's layers 3 and 6 with its head, so it differs from the
    # pretrained-layer student and the record says where it came from
    args = ["run", "suite=glue_enc_tiny", "method=none", f"data_dir={data_root}", "train.max_steps=0",
            f"cache_dir={cache_dir}"]
    scores = {}
    for init in ("pretrained", "teacher"):
        assert main([*args, f"student_init={init}", f"results_dir={tmp_path / init}"]) == 0
        (path,) = (tmp_path / init / "glue_enc_tiny").glob("none-*.json")
        record = json.loads(path.read_text())
        scores[init] = record["student_sha256"]["sst2"]
        assert ("init" in record["student"]) == (init == "teacher")
        assert record["config"]["student_init"] == init
    assert scores["pretrained"] != scores["teacher"]
