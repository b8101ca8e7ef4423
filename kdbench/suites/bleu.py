"""BLEU: Multi30k English → German (test_2016_flickr), corpus BLEU by sacrebleu, 0–100.

    kdbench run suite=bleu method=rlkd data_dir=../shared/data

Version history: 1: first release; 2: the teacher is fine-tuned on Multi30k train (200 steps of 8); 3: a validation slice is held out of the training data. Prompt format: see kdbench/suites/generation.py.
The record's data notes carry sacrebleu's signature.
"""

from __future__ import annotations

from kdbench import metrics
from kdbench.registry import SUITES
from kdbench.suites.generation import GenerationSuite


class BleuSuite(GenerationSuite):
    tasks = ("multi30k",)
    metric_names = ("bleu",)

    def load(self, name, data_root, max_train, max_eval):
        data = super().load(name, data_root, max_train, max_eval)
        data.notes.append(f"sacrebleu signature: {metrics.bleu_signature()}")
        return data

    def metric_references(self, references):
        return [refs[0] for refs in references]  # one reference per example

    def metric(self, predictions, references):
        return {"bleu": metrics.bleu(predictions, self.metric_references(references))}


SUITES.add("bleu", BleuSuite)
