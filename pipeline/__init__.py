"""bento-pipeline: declarative build graphs that turn bentos into container images.

Public API (kept small; everything else is private by convention):

- :func:`build` / :func:`abuild` — build a bento on a backend, returning a :class:`BuildResult`
  (``bentoml.container.build``'s keyword names work too: ``image_tag``, ``build_arg``, ...).
- :func:`matrix` / :func:`amatrix` — one build per platform x python x distro x cuda cell,
  returning a :class:`MatrixResult`.
- :func:`register_backend` — add an external engine.
- :class:`BuildRequest`, :class:`BuildResult`, :class:`SecretSpec`,
  :class:`StageGraph`, :class:`Stage`.
- :class:`PipelineError` and its family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import (
    BackendError,
    BentoNotFoundError,
    BuildError,
    ConfigError,
    GraphError,
    PipelineError,
    RegistryAuthError,
    TemplateError,
)
from pipeline.request import BuildRequest, BuildResult, SecretSpec

if TYPE_CHECKING:  # `pipeline.matrix` is a callable module: type it as the function
    from pipeline.matrixbuild import matrix as matrix

__version__ = "0.1.0"

# Names resolved lazily so `import pipeline` stays fast and free of engine imports.
_LAZY = {
    "build": "pipeline.api",
    "abuild": "pipeline.api",
    "matrix": "pipeline.matrix",  # the submodule itself, which is callable
    "amatrix": "pipeline.matrixbuild",
    "MatrixResult": "pipeline.matrixcells",
    "register_backend": "pipeline.backends",
    "get_backend": "pipeline.backends",
    "StageGraph": "pipeline.graph",
    "Stage": "pipeline.graph",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    return module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)


__all__ = [
    "BackendError",
    "BentoNotFoundError",
    "BuildError",
    "BuildRequest",
    "BuildResult",
    "ConfigError",
    "GraphError",
    "PipelineError",
    "RegistryAuthError",
    "SecretSpec",
    "TemplateError",
    "__version__",
    *_LAZY,
]
