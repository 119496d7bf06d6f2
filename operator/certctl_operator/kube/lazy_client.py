"""``kubernetes_asyncio.client`` made lazy: each API class and model is imported when first used.

The generated package imports every API class and every model of the
Kubernetes API when it is imported: about 36 MB of code objects and classes
in the operator process, which uses a handful of them (Kopf, which imports
the package to recognise model objects handed to it, names two).

:func:`install` registers the three generated packages (``client``,
``client.api``, ``client.models``) as modules whose names are resolved on
first access, from the imports their ``__init__.py`` lists (read, never
executed). Everything else (``ApiClient``, the watch, the configuration)
is the library's own code, imported as usual. It must run before anything
imports ``kubernetes_asyncio``; the ``run`` command calls it first thing.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

PACKAGE = "kubernetes_asyncio"
LAZY_PACKAGES = (f"{PACKAGE}.client", f"{PACKAGE}.client.api", f"{PACKAGE}.client.models")
"""Parents before children: a child is set as its parent's attribute when registered."""


def install() -> bool:
    """Register the lazy packages; False when it is too late (already imported) or the library is absent."""
    if any(name in sys.modules for name in (PACKAGE, *LAZY_PACKAGES)):
        return False
    top = importlib.util.find_spec(PACKAGE)
    if top is None or not top.submodule_search_locations:
        return False
    root = Path(next(iter(top.submodule_search_locations)))
    for name in LAZY_PACKAGES:
        directory = root.joinpath(*name.split(".")[1:])
        sys.modules[name] = _lazy_package(name, directory)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, sys.modules[name])
    return True


def exports_of(source: str) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """What a generated ``__init__.py`` binds: ``{name: (module, attribute)}`` and its literal constants.

    Only top-level absolute ``from module import name`` statements and assignments of literals
    (``__version__``, ``__all__``) are taken; anything else in the file is not run.
    """
    exports: dict[str, tuple[str, str]] = {}
    constants: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                exports[alias.asname or alias.name] = (node.module, alias.name)
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return exports, constants


def _lazy_package(name: str, directory: Path) -> types.ModuleType:
    init = directory / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(directory)])
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exports, constants = exports_of(init.read_text(encoding="utf-8"))
    module.__dict__.update(constants)

    def __getattr__(attribute: str) -> Any:
        found = exports.get(attribute)
        if found is None:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        value = getattr(importlib.import_module(found[0]), found[1])
        setattr(module, attribute, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(exports))

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    return module


__all__ = ["LAZY_PACKAGES", "exports_of", "install"]
