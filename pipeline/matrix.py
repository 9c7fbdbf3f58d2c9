"""``pipeline.matrix``: matrix builds under their public name, both a module and the function.

The implementation is :mod:`pipeline.matrixbuild` (running) and :mod:`pipeline.matrixcells` (the
cells); this module re-exports their public names and
is callable, so ``pipeline.matrix(...)``, ``pipeline.matrix.expand_matrix(...)`` and
``from pipeline.matrix import dry_run_matrix`` all work, whichever comes first. (Importing a
submodule binds it as the package's attribute: a plain module here would hide the function.)
"""

from __future__ import annotations

import sys
import types
from typing import Any

from pipeline.matrixbuild import (
    CellDryRun,
    CellOutput,
    amatrix,
    dry_run_matrix,
    matrix,
    plan_matrix,
)
from pipeline.matrixcells import (
    CELL_OWN_OPTIONS,
    DEFAULT_BASE_IMAGE_TAG_TEMPLATE,
    DEFAULT_CONCURRENCY,
    DEFAULT_TAG_TEMPLATE,
    NO_CUDA,
    STATUSES,
    TEMPLATE_FIELDS,
    Cell,
    CellResult,
    MatrixPlan,
    MatrixResult,
    PlannedCell,
    Status,
    cell_tag,
    check_tag_template,
    expand_matrix,
)

__all__ = [
    "CELL_OWN_OPTIONS",
    "DEFAULT_BASE_IMAGE_TAG_TEMPLATE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TAG_TEMPLATE",
    "NO_CUDA",
    "STATUSES",
    "TEMPLATE_FIELDS",
    "Cell",
    "CellDryRun",
    "CellOutput",
    "CellResult",
    "MatrixPlan",
    "MatrixResult",
    "PlannedCell",
    "Status",
    "amatrix",
    "cell_tag",
    "check_tag_template",
    "dry_run_matrix",
    "expand_matrix",
    "matrix",
    "plan_matrix",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> MatrixResult:
        return matrix(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
