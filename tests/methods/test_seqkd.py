"""seqkd: CE on the teacher's responses, generated once per training example and cached."""
import json

import pytest
import torch

from kdbench.errors import KdbenchError
from kdbench.methods.seqkd import SeqKDParams, TeacherResponsesPolicy
from kdbench.rollouts import Rollouts, on_policy_batch
from kdbench.teacher.responses import TeacherResponses
from tests.test_rollouts import EOS, PAD, PROMPT_RESPONSE, batch, tiny_llama


def test_a_stored_response_is_read_back_only_for_the_same_prompt(tmp_path):
    store = TeacherResponses(tmp_path / "entry", {"k": 1})
    store.put(3, [5, 6], [7, 1])
    assert store.get(3, [5, 6]) == [7, 1] and store.get(3, [5, 9]) is None and store.get(4, [5, 6]) is None
    assert store.close() == {"folder": str(tmp_path / "entry"), "rows_read": 1, "rows_filled": 1}
    other = TeacherResponses(tmp_path / "entry", {"k": 1})  # a second run filling the same entry
    other.put(8, [2], [3])
    assert TeacherResponses(tmp_path / "entry", {"k": 1}).get(3, [5, 6]) == [7, 1]
    other.close()
    merged = json.loads((tmp_path / "entry" / "responses.json").read_text())["responses"]
    assert sorted(merged) == ["3", "8"]
    assert TeacherResponses(tmp_path / "entry", {"k": 2}).get(3, [5, 6]) is None  # another key: nothing


def test_every_batch_is_the_teachers_responses_generated_once(tmp_path):
    policy = TeacherResponsesPolicy(SeqKDParams(max_new_tokens=4))
    policy.responses = TeacherResponses(tmp_path / "entry", {"k": 1})
    rollouts = Rollouts(PAD, EOS, "right", 32, seed=0, teacher=tiny_llama(1))
    gold = batch(PROMPT_RESPONSE)
    gold["example_index"] = torch.tensor([10, 11])
    record = {}
    first, fresh = on_policy_batch(policy, rollouts, gold, tiny_llama(0), 1, 5, 1, record)
    again, _ = on_policy_batch(policy, rollouts, gold, tiny_llama(0), 2, 5, 2, record)
    assert fresh and torch.equal(first["input_ids"], again["input_ids"])  # greedy, then read back
    assert record["sources"]["teacher"] == 2 and policy.responses.read == 2 and len(policy.responses.new) == 2
    assert torch.equal(first["labels"][:, :1], torch.full((2, 1), -100))  # the prompts are not scored


@pytest.mark.parametrize("bad,match", [({"decoding": "beam"}, "method.decoding"),
                                       ({"max_new_tokens": 0}, "generation length of 0")])
def test_bad_seqkd_parameters_are_refused(bad, match):
    with pytest.raises(KdbenchError, match=match):
        SeqKDParams(**bad)
