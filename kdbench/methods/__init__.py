"""The method registry: importing this package registers every method.

Each method is one file (`none`, `kd`, `rlkd`, `fakd`) plus its test in
tests/methods/. Methods import only torch and `kdbench.losses`, never the runner.
"""

from kdbench.methods import fakd, kd, none, rlkd  # noqa: F401  (registration side effects)
from kdbench.methods.base import OUTPUTS, Method, Step, register_method

__all__ = ["OUTPUTS", "Method", "Step", "register_method"]
