"""ULD with GOLD's byte-offset alignment: the groups (kdbench.data.byte_alignment) and the merged loss
(kdbench.losses.uld.uld_bytes_loss), by hand, against index ULD where tokenisations agree, and on two real
tokenizers that cut text differently."""
import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from kdbench.data.batching import prompt_response
from kdbench.data.byte_alignment import aligned_groups, byte_groups, response_byte_ends
from kdbench.errors import KdbenchError
from kdbench.losses.uld import uld_bytes_loss, uld_loss
from kdbench.methods.base import Step
from kdbench.methods.uld import ULDParams, uld
from kdbench.teacher.outputs import ByteAlignment, TeacherOut


def _bpe(vocab_size: int, text: str) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([text] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def test_groups_close_where_both_tokenisations_end_at_the_same_byte():
    assert byte_groups([3, 5, 9], [3, 9]) == ([0, 1, 1], [0, 1])
    assert byte_groups([2, 4, 6], [1, 3, 6]) == ([0, 0, 0], [0, 0, 0])  # no common cut before byte 6
    # the student was cut by max_length at byte 5: the teacher's tokens past the last common cut pair nothing
    assert byte_groups([3, 5], [3, 9, 12]) == ([0, -1], [0, -1, -1])
    assert byte_groups([], [1]) == ([], [-1])


def test_byte_ends_count_utf8_bytes_and_put_the_eos_at_the_end():
    tokenizer = _bpe(300, "héllo wörld")
    text = "héllo wörld"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ends = response_byte_ends(tokenizer, text, len(ids) + 1)
    assert len(ends) == len(ids) + 1 and ends[-1] == ends[-2] == len(text.encode())  # 13 bytes, EOS zero-width
    assert ends == sorted(ends)
    decoded = [len(tokenizer.decode(ids[:k + 1]).encode()) for k in range(len(ids))]
    assert ends[:-1] == decoded  # each token ends where the decoded prefix ends
    assert response_byte_ends(tokenizer, text, 2) == ends[:2]  # max_length kept two response tokens


def test_two_tokenizers_that_cut_differently_group_the_same_text():
    words = "a man in a blue shirt is standing on a ladder two dogs play in the snow"
    coarse, fine = _bpe(400, words), _bpe(262, words)  # 262: little beyond the byte alphabet
    prompt, response = "Describe:", " two dogs play on a blue ladder"
    s_feature = prompt_response(fine, prompt, response, 512)
    t_feature = prompt_response(coarse, prompt, response, 512)
    groups = aligned_groups(fine, coarse, response, s_feature, t_feature)
    sg, tg = groups["student_group"], groups["teacher_group"]
    assert len(sg) == sum(x != -100 for x in s_feature["labels"]) > len(tg) == sum(
        x != -100 for x in t_feature["labels"])
    assert -1 not in sg and -1 not in tg and max(sg) == max(tg)  # every token in a group, the same count
    s_ids = [i for i, x in zip(s_feature["input_ids"], s_feature["labels"]) if x != -100][:-1]  # no EOS
    t_ids = [i for i, x in zip(t_feature["input_ids"], t_feature["labels"]) if x != -100][:-1]
    for g in range(max(sg)):  # each pair of groups spells the same text
        s_text = fine.decode([i for i, k in zip(s_ids, sg) if k == g])
        t_text = coarse.decode([i for i, k in zip(t_ids, tg) if k == g])
        assert s_text == t_text and s_text
    assert sg[-1] == tg[-1] == max(sg)  # the two EOS are the last pair


def test_a_slow_tokenizer_is_refused_with_the_fix():
    class Slow:
        is_fast, name_or_path = False, "slow-tok"
    with pytest.raises(KdbenchError, match="method.align=index"):
        response_byte_ends(Slow(), "x", 1)


def _whole(s, t, ms, mt, ts, tt, gs, gt, merge="first"):
    return uld_bytes_loss(s, t, ms, mt, ts, tt, gs, gt, merge=merge)


def test_a_hand_case_merges_a_split_token_by_the_chain_rule():
    # student: 2 response tokens [a, b] covering the teacher's single token "ab", then EOS on both sides.
    # student position 0: q0 = (0.6, 0.3, 0.1), its token a = id 0; position 1: q1 = (0.2, 0.8, ...), token b = id 1
    # merged (first): q0 · q1(b) = (0.48, 0.24, 0.08); teacher p = (0.5, 0.5) → |0.48-0.5| + |0.24-0.5| + 0.08 = 0.36
    # merged (last): q1 · q0(a) = 0.6 · (0.2, 0.8, 0) sorted (0.48, 0.12, 0) → 0.02 + 0.38 + 0 = 0.40
    # EOS pair: q = (1, 0, 0), p = (1, 0): 0
    s = torch.log(torch.tensor([[[0.6, 0.3, 0.1], [0.2, 0.8, 1e-30], [1.0, 1e-30, 1e-30]]]))
    t = torch.log(torch.tensor([[[0.5, 0.5], [1.0, 1e-30]]]))
    ms, mt = torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)
    ts, tt = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1]])
    gs, gt = torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1]])
    assert _whole(s, t, ms, mt, ts, tt, gs, gt).item() == pytest.approx((0.36 + 0.0) / 2, abs=1e-6)
    assert _whole(s, t, ms, mt, ts, tt, gs, gt, "last").item() == pytest.approx((0.40 + 0.0) / 2, abs=1e-6)


def test_single_token_groups_are_index_uld_and_rows_weigh_equally():
    torch.manual_seed(0)
    s, t = torch.randn(2, 6, 5), torch.randn(2, 7, 9)
    ms = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    mt = torch.tensor([[0, 0, 1, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    ts, tt = torch.randint(0, 5, (2, 6)), torch.randint(0, 9, (2, 7))
    gs = torch.tensor([[0, 1, 2, 3], [0, 1, -1, -1]])
    gt = torch.tensor([[0, 1, 2, 3], [0, 1, -1, -1]])
    expected = uld_loss(s, t, ms, mt)
    assert _whole(s, t, ms, mt, ts, tt, gs, gt).item() == pytest.approx(expected.item(), abs=1e-6)
    assert uld_bytes_loss(s, t, ms, mt, ts, tt, gs, gt, reduction="none").tolist() == pytest.approx(
        uld_loss(s, t, ms, mt, reduction="none").tolist(), abs=1e-6)


def test_zero_for_identical_text_distributions_invariant_to_permutation_and_the_gradient_is_the_students():
    torch.manual_seed(1)
    s = torch.randn(1, 4, 6, requires_grad=True)
    m = torch.ones(1, 4, dtype=torch.bool)
    targets = torch.tensor([[1, 2, 3, 4]])
    g = torch.tensor([[0, 0, 1, 2]])
    perm = torch.randperm(6)
    inverse = torch.argsort(perm)
    t = s.detach()[..., perm]  # the teacher: the same model with its words numbered differently
    loss = _whole(s, t, m, m, targets, inverse[targets], g, g)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(1, 4, 6)
    loss = _whole(s, other, m, m, targets, targets, g, g)
    loss.backward()
    assert s.grad.abs().sum() > 0 and math.isfinite(loss.item())
    empty = torch.full((1, 1), -1)
    assert _whole(s, other, m, m, targets, targets, empty, empty).item() == 0.0


def test_the_method_reads_the_teachers_alignment_and_refuses_without_one():
    torch.manual_seed(2)
    s, t = torch.randn(1, 3, 5), torch.randn(1, 2, 7)
    labels = torch.tensor([[1, 2, 3]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    alignment = ByteAlignment(torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1]]), torch.tensor([[4, 5]]))
    teacher = TeacherOut(t, position_mask=torch.ones(1, 2, dtype=torch.bool), alignment=alignment)
    step = Step(type("Out", (), {"logits": s})(), teacher, labels, torch.ones(1, 3), mask)
    loss, parts = uld(step, ULDParams(align="bytes"))
    expected = uld_bytes_loss(s, t, mask, teacher.position_mask, labels, alignment.teacher_targets,
                              alignment.student_group, alignment.teacher_group)
    assert parts["uld"] == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(KdbenchError, match="byte-alignment groups"):
        uld(Step(step.student, TeacherOut(t, position_mask=teacher.position_mask), labels, torch.ones(1, 3), mask),
            ULDParams(align="bytes"))
    with pytest.raises(KdbenchError, match="method.align must be index or bytes"):
        ULDParams(align="chars")
