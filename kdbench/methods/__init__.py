"""The method registry: importing this package registers every method.

Each method is one file (`none`, `kd`, `rlkd`, `fakd`) plus its test in tests/methods/; every module of this
package is imported, so a new built-in method is its file alone. Methods import only torch,
`kdbench.losses` and (on-policy methods) `kdbench.rollouts.DataPolicy` and `kdbench.mixed_sampling`, never the
runner.
"""

import importlib
import pkgutil

from kdbench.methods.base import OUTPUTS, Method, Step, register_method

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["OUTPUTS", "Method", "Step", "register_method"]
