"""GSM8K: grade-school math, accuracy of the final number (RLKD Table 2 counts correct of 1,319), 0–100.

    kdbench run suite=rlkd_gsm8k method=rlkd      # on a GPU with hub access

Version history: 1: first release. Prompt "Question: {question}\\nAnswer:"; the
prediction's number after "####" (else its last number) must equal the reference's.
"""

from __future__ import annotations

from kdbench import metrics
from kdbench.registry import SUITES
from kdbench.suites.generation import GenerationSuite


class Gsm8kSuite(GenerationSuite):
    tasks = ("gsm8k",)
    metric_names = ("gsm8k_accuracy",)

    def metric_references(self, references):
        return [refs[0] for refs in references]  # one reference per example

    def metric(self, predictions, references):
        return {"gsm8k_accuracy": metrics.gsm8k_accuracy(predictions, self.metric_references(references))}


SUITES.add("gsm8k", Gsm8kSuite)
