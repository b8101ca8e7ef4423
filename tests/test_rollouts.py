"""The runner's on-policy step (kdbench.rollouts): prompts, sampled batches, sources, determinism."""
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kdbench.data.batching import LMCollator
from kdbench.rollouts import DataPolicy, Rollouts, on_policy_batch

PAD, EOS = 0, 1


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                        pad_token_id=PAD, eos_token_id=EOS))


def batch(rows, side="right"):
    return LMCollator(PAD, side)(rows)


PROMPT_RESPONSE = [{"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, -100, 8, 9]},
                   {"input_ids": [4, 5, 6], "labels": [-100, 5, 6]}]


def test_the_prompt_is_what_the_labels_leave_unscored_and_a_text_block_splits_in_half():
    rollouts = Rollouts(PAD, EOS, "right", 32)
    assert rollouts.prompts(batch(PROMPT_RESPONSE)) == [([5, 6, 7], 2), ([4], 2)]
    assert rollouts.prompts(batch(PROMPT_RESPONSE, "left")) == [([5, 6, 7], 2), ([4], 2)]
    text = [{"input_ids": list(range(2, 12)), "labels": list(range(2, 12))}]
    assert rollouts.prompts(batch(text)) == [([2, 3, 4, 5, 6], 5)]


def test_a_sampled_batch_scores_only_the_sample_up_to_its_eos_and_is_reproducible():
    rollouts, model = Rollouts(PAD, EOS, "right", 32), tiny_llama()
    features, sampled = rollouts.sample(model, batch(PROMPT_RESPONSE), 6, 1.0, seed=7)
    again, _ = rollouts.sample(model, batch(PROMPT_RESPONSE), 6, 1.0, seed=7)
    assert features == again
    for feature, (prompt, _) in zip(features, rollouts.prompts(batch(PROMPT_RESPONSE))):
        continuation = feature["input_ids"][len(prompt):]
        assert feature["input_ids"][: len(prompt)] == prompt and 1 <= len(continuation) <= 6
        assert feature["labels"] == [-100] * len(prompt) + continuation
        assert EOS not in continuation[:-1]  # cut at the first EOS, which stays scored
    assert sampled == sum(len(f["input_ids"]) for f in features) - 4
    assert model.training  # eval mode during sampling only


def test_sampling_leaves_the_training_random_stream_where_it_was():
    rollouts, model = Rollouts(PAD, EOS, "right", 32), tiny_llama()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    rollouts.sample(model, batch(PROMPT_RESPONSE), 4, 1.0, seed=11)
    assert torch.equal(torch.rand(3), expected)


def test_the_response_length_is_capped_by_max_length():
    rollouts, model = Rollouts(PAD, None, "right", 6), tiny_llama()  # no EOS: every sample runs to the cap
    features, _ = rollouts.sample(model, batch(PROMPT_RESPONSE), 50, 1.0, seed=0)
    assert max(len(f["input_ids"]) for f in features) == 6


class _Always(DataPolicy):
    def __init__(self, source):
        self.source, self.kept = source, []

    def choose(self, step, max_steps, draw):
        return self.source

    def remember(self, features):
        self.kept.extend(features)

    def replay(self, count, draw):
        return self.kept[:count]


def test_on_policy_batch_counts_its_sources_and_keeps_student_samples():
    rollouts, student = Rollouts(PAD, EOS, "right", 32, seed=1, teacher=tiny_llama(1)), tiny_llama(0)
    record, gold = {}, batch(PROMPT_RESPONSE)
    assert on_policy_batch(_Always("gold"), rollouts, gold, student, 1, 10, 1, record) == (gold, False)
    policy = _Always("student")
    sampled, fresh = on_policy_batch(policy, rollouts, gold, student, 2, 10, 2, record)
    assert fresh and sampled["input_ids"].shape[0] == 2 and len(policy.kept) == 2
    policy.source = "replay"
    replayed, fresh = on_policy_batch(policy, rollouts, gold, student, 3, 10, 3, record)
    assert fresh and torch.equal(replayed["input_ids"], sampled["input_ids"])
    assert record["sources"] == {"gold": 1, "student": 1, "teacher": 0, "replay": 1, "rollout": 0}
    assert record["samples"] == 2
    assert record["sampled_tokens"] > 0 and record["generation_s"] > 0


def test_a_prompt_that_fills_max_length_keeps_its_last_tokens_and_one_sampled_token():
    rollouts, model = Rollouts(PAD, None, "right", 5), tiny_llama()
    full = [{"input_ids": [3, 4, 5, 6, 7], "labels": [-100] * 5}]  # nothing scored: all prompt, at max_length
    (feature,), sampled = rollouts.sample(model, batch(full), 8, 1.0, seed=0)
    assert feature["input_ids"][:4] == [4, 5, 6, 7] and len(feature["input_ids"]) == 5 and sampled == 1
