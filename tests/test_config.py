"""Config precedence, typed overrides and method-parameter routing."""

import pytest

from kdbench.config import convert, parse_overrides, resolve
from kdbench.errors import KdbenchError


def test_precedence_defaults_then_suite_file_then_cli():
    cfg = resolve({"suite": "glue_enc", "method": "kd"}, environ={})
    assert cfg.train.max_steps == 1000 and cfg.train.keep == "best"  # suites/glue_enc.toml
    assert cfg.student_init == "teacher"
    assert cfg.train.weight_decay == 0.01  # dataclass default
    assert cfg.method_params.temperature == 2.0  # [method.kd] in suites/glue_enc.toml
    cfg = resolve({"suite": "glue_enc", "method": "kd", "train.max_steps": "7", "method.temperature": "4"}, environ={})
    assert cfg.train.max_steps == 7 and cfg.method_params.temperature == 4.0


def test_environment_sets_data_dir_and_cli_overrides_it():
    assert resolve({}, environ={"KDBENCH_DATA_DIR": "/data"}).data_dir == "/data"
    assert resolve({"data_dir": "/other"}, environ={"KDBENCH_DATA_DIR": "/data"}).data_dir == "/other"


def test_suite_method_table_applies_only_to_its_method():
    cfg = resolve({"suite": "glue_enc", "method": "fakd"}, environ={})
    assert cfg.method_params.temperature == 2.0 and not hasattr(cfg.method_params, "alpha")


def test_method_params_route_to_the_chosen_method():
    cfg = resolve({"method": "rlkd", "method.k": "15", "method.dynamic": "true", "method.logits_loss": "tvd"}, environ={})
    assert (cfg.method_params.k, cfg.method_params.dynamic, cfg.method_params.logits_loss) == (15, True, "tvd")
    with pytest.raises(KdbenchError, match="method 'kd' takes"):
        resolve({"method": "kd", "method.k": "15"}, environ={})


def test_lists_ints_floats_and_bools_parse_by_field_type():
    cfg = resolve({"tasks": "[sst2, rte]", "train.lr": "3e-5", "train.batch_size": "8", "dry_run": "yes"}, environ={})
    assert cfg.tasks == ("sst2", "rte") and cfg.train.lr == 3e-5 and cfg.train.batch_size == 8 and cfg.dry_run
    assert convert("x", 2, float) == 2.0  # an int is fine for a float


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"trian.lr": "1"}, "unknown key 'trian.lr'"),
        ({"train.batch_size": "big"}, "train.batch_size expects an integer"),
        ({"train.lr": "fast"}, "train.lr expects a number"),
        ({"dry_run": "maybe"}, "dry_run expects true or false"),
        ({"train.max_steps": "-1"}, "train.max_steps must be >= 0"),
        ({"method": "rlkd", "method.k": "x"}, "method.k expects an integer"),
        ({"suite": "glu"}, "did you mean 'glue'"),
        ({"method": "kdd"}, "did you mean 'kd'"),
        ({"device": "tpu"}, "unknown device"),
        ({"precision": "fp23"}, "did you mean 'fp32'"),
    ],
)
def test_bad_config_is_a_readable_error(overrides, match):
    with pytest.raises(KdbenchError, match=match):
        resolve(overrides, environ={})


def test_override_syntax():
    assert parse_overrides(["a=1", "b.c=[x,y]"]) == {"a": "1", "b.c": "[x,y]"}
    with pytest.raises(KdbenchError, match="key=value"):
        parse_overrides(["rlkd"])


def test_resolved_config_is_plain_data():
    d = resolve({"method": "rlkd"}, environ={}).to_dict()
    assert d["method_params"]["k"] == 5 and d["train"]["max_steps"] == 800 and isinstance(d["tasks"], list)


def test_the_suite_file_is_read_once_and_travels_with_the_config(monkeypatch):
    import kdbench.config as config
    from kdbench.experiment import suite_of, validate

    reads = []
    real = config.load_suite_file
    monkeypatch.setattr(config, "load_suite_file", lambda name: reads.append(name) or real(name))
    cfg = resolve({"suite": "char_tiny", "method": "kd"}, environ={})
    assert reads == ["char_tiny"] and cfg.suite_info.kind == "char" and cfg.suite_info.tasks == ("shakespeare",)
    suite_of(cfg)
    validate(cfg)
    assert reads == ["char_tiny"]  # the run reads the info the config carries
    assert "suite_info" not in cfg.to_dict()  # not a key: the config hash and the record's config are unchanged
