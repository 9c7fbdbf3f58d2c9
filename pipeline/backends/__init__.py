"""External build engines behind one interface, and the plugin API.

Built in: docker, buildx, podman, buildah, nerdctl, buildctl (one module each). Add your own
with :func:`register_backend` or the ``bento_pipeline.backends`` entry-point group; pick one
with :func:`select_backend` (``--backend``, ``PIPELINE_BACKEND``, ``BENTOML_CONTAINERIZE_BACKEND``,
else the first healthy engine). See docs/backends.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.backends.base import BackendSpec, Capabilities, Health

if TYPE_CHECKING:
    from pipeline.backends.registry import (
        AUTO_ORDER,
        BUILTIN,
        ENTRY_POINT_GROUP,
        Selection,
        available_backends,
        get_backend,
        get_executor,
        load_entry_points,
        register_backend,
        request_options,
        select_backend,
        unregister_backend,
    )

# The registry's names are resolved on first use: importing one engine's module or a helper
# (pipeline.backends.verify, used by the Dagger executor too) must not load the registry, which
# reaches every executor, the Dagger one included.
_LAZY = dict.fromkeys(
    (
        "AUTO_ORDER",
        "BUILTIN",
        "ENTRY_POINT_GROUP",
        "Selection",
        "available_backends",
        "get_backend",
        "get_executor",
        "load_entry_points",
        "register_backend",
        "request_options",
        "select_backend",
        "unregister_backend",
    ),
    "pipeline.backends.registry",
)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pipeline.backends' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


__all__ = [
    "AUTO_ORDER",
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "BackendSpec",
    "Capabilities",
    "Health",
    "Selection",
    "available_backends",
    "get_backend",
    "get_executor",
    "load_entry_points",
    "register_backend",
    "request_options",
    "select_backend",
    "unregister_backend",
]
