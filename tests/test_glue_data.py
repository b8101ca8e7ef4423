"""Reading GLUE TSVs: the real files parse to the official counts; malformed rows name file and line."""

import pytest

from kdbench.data.glue_tasks import TASKS
from kdbench.data.local import read_tsv
from kdbench.errors import KdbenchError
from kdbench.suites.glue import GlueSuite


@pytest.mark.parametrize(
    "task,filename,rows",
    [("sst2", "dev.tsv", 872), ("cola", "train.tsv", 8551), ("cola", "dev.tsv", 1043), ("mrpc", "train.tsv", 3668),
     ("stsb", "dev.tsv", 1500), ("rte", "dev.tsv", 277), ("wnli", "train.tsv", 635), ("qnli", "dev.tsv", 5463)],
)
def test_real_files_parse_to_official_counts(data_root, task, filename, rows):
    t = TASKS[task]
    examples = read_tsv(t, data_root / "glue" / t.folder / filename)
    assert len(examples) == rows
    if t.regression:
        assert all(0.0 <= e.label <= 5.0 for e in examples)
    else:
        assert {e.label for e in examples} <= set(range(t.num_labels))
    assert (examples[0].text_b is not None) == (len(t.text_columns) == 2)


def write(tmp_path, text, name="train.tsv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    "task,text,match",
    [
        ("sst2", "sentence\tlabel\nfine \t1\nno tab here\n", r"train.tsv:3: expected at least 2 tab-separated columns, found 1"),
        ("sst2", "sentence\tlabel\nfine \t7\n", r"train.tsv:2: label '7' is out of range; sst2 labels are 0, 1"),
        ("stsb", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                 "0\tg\tf\ty\t1\ts\ts\ta\tb\thigh\n", r"train.tsv:2: score 'high' is not a number"),
        ("sst2", "sentence\tlabel\n", r"no data rows"),
        ("sst2", "", r"empty file"),
        ("sst2", "text\tgold\nx\t1\n", r"header has no column 'sentence'"),
        ("sst2", b"sentence\tlabel\n\xff\xfe\t1\n", r"not UTF-8"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, task, text, match):
    with pytest.raises(KdbenchError, match=match):
        read_tsv(TASKS[task], write(tmp_path, text))


def test_missing_task_data_names_the_paths_tried(tmp_path):
    with pytest.raises(KdbenchError, match=r"tried: .*glue/QNLI/train.tsv; hub nyu-mll/glue \(skipped: HF_HUB_OFFLINE"):
        GlueSuite().load("qnli", tmp_path, 0, 0)


def test_row_limits_take_the_first_rows(data_root):
    data = GlueSuite().load("sst2", data_root, 10, 5)
    assert len(data.train.examples) == 10 and len(data.evals["dev"].examples) == 5
