"""Byte-offset alignment of two tokenisations of one response (TRL GOLD, `ULDLoss._align_by_byte_offsets`).

Two tokenizers cut the same text at different places. Where both cut at the same byte, their tokens up to
there cover the same text: those runs of tokens form one *group* on each side, and the k-th group of the
student pairs with the k-th group of the teacher (kdbench.losses.uld.uld_bytes_loss merges each group into
one distribution). Example: student tokens ending at bytes [3, 5, 9], teacher tokens at [3, 9] give
student groups [0], [1, 2] and teacher groups [0], [1].

    ends = response_byte_ends(tokenizer, response, kept)   # UTF-8 end offset of each response token (+ EOS)
    student_group, teacher_group = byte_groups(student_ends, teacher_ends)
"""

from __future__ import annotations

from itertools import accumulate

from kdbench.errors import KdbenchError


def response_byte_ends(tokenizer, response: str, kept: int) -> list[int]:
    """The UTF-8 byte offset where each of the first `kept` response tokens ends, the EOS that
    `prompt_response` appends included (zero-width, at the end of the text). The tokens are those of
    `tokenizer(response)`, as `prompt_response` makes them; offsets come from the fast tokenizer's
    character offsets, made non-decreasing (a token that trims to nothing, such as a lone space, ends
    where the previous one did)."""
    if not getattr(tokenizer, "is_fast", False):
        raise KdbenchError(f"method.align=bytes reads token offsets, which {tokenizer.name_or_path} (a slow"
                           " tokenizer) does not give; use method.align=index or a fast tokenizer")
    chars = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    byte_at = [0, *accumulate(len(c.encode("utf-8")) for c in response)]  # byte offset of each character
    ends = list(accumulate((byte_at[end] for _, end in chars), max, initial=0))[1:]
    return (ends + [byte_at[-1]])[:kept]


def byte_groups(student_ends: list[int], teacher_ends: list[int]) -> tuple[list[int], list[int]]:
    """Each token's group index on both sides (-1: in no group). Walk both end-offset lists, advancing the
    side whose token ends earlier; a group closes where both end at the same byte. Tokens after the last
    common boundary (one side cut shorter by max_length) cover different text and get -1; GOLD merges them
    into one last pair regardless."""
    student, teacher = [-1] * len(student_ends), [-1] * len(teacher_ends)
    s = t = group = 0
    s_start = t_start = 0
    while s < len(student_ends) and t < len(teacher_ends):
        if student_ends[s] < teacher_ends[t]:
            s += 1
        elif student_ends[s] > teacher_ends[t]:
            t += 1
        else:
            s, t = s + 1, t + 1
            student[s_start:s] = [group] * (s - s_start)
            teacher[t_start:t] = [group] * (t - t_start)
            s_start, t_start, group = s, t, group + 1
    return student, teacher


def aligned_groups(student_tokenizer, teacher_tokenizer, response: str, student: dict, teacher: dict) -> dict:
    """The group indices of one example's response tokens, in response order, for a pair of
    `prompt_response` features of it (their truncation kept): {"student_group", "teacher_group"}."""
    kept = [sum(label != -100 for label in f["labels"]) for f in (student, teacher)]
    student_group, teacher_group = byte_groups(response_byte_ends(student_tokenizer, response, kept[0]),
                                               response_byte_ends(teacher_tokenizer, response, kept[1]))
    return {"student_group": student_group, "teacher_group": teacher_group}
