"""The small benchmark bento: one BentoML service, one API, one small pure-python dependency.

The benchmark's "code change" edits the CODE_REVISION line; its "dependency added" adds one
package to bentofile.yaml.
"""

from __future__ import annotations

import bentoml

# imported by the service at run time; `bentoml build` runs without it installed
with bentoml.importing():
    import six

CODE_REVISION = "r0"


@bentoml.service
class Small:
    @bentoml.api
    def shout(self, text: str) -> dict:
        return {"text": six.ensure_str(text).upper(), "six": six.__version__}
