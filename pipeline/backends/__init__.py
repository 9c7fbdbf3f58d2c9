"""External build engines behind one interface, and the plugin API.

Built in: docker, buildx, podman, buildah, nerdctl, buildctl (one module each). Add your own
with :func:`register_backend` or the ``bento_pipeline.backends`` entry-point group; pick one
with :func:`select_backend` (``--backend``, ``PIPELINE_BACKEND``, ``BENTOML_CONTAINERIZE_BACKEND``,
else the first healthy engine). See docs/backends.md.
"""

from __future__ import annotations

from pipeline.backends.base import BackendSpec, Capabilities, Health
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
