"""Suite kinds; importing this package registers every one (suites/*.toml are the presets that name them).

Each kind is one module here that registers itself with `@register_suite_kind` (kdbench.suites.base); every
module of this package is imported, so a new built-in kind is its file plus its TOML preset.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
