"""The compiled benchmark bento: its dependency, netifaces 0.11.0, is a C extension published
only as an sdist for Python 3.11+ on Linux, so every image build compiles it (a compiler in the
build, and the build stage matters).

The benchmark's "code change" edits the CODE_REVISION line; its "dependency added" adds one
package to bentofile.yaml.
"""

from __future__ import annotations

import bentoml

# imported by the service at run time; `bentoml build` runs without it installed
with bentoml.importing():
    import netifaces

CODE_REVISION = "r0"


@bentoml.service
class Compiled:
    @bentoml.api
    def interfaces(self, prefix: str = "") -> dict:
        names = sorted(n for n in netifaces.interfaces() if n.startswith(prefix))
        return {"interfaces": names, "loopback": netifaces.ifaddresses("lo")[netifaces.AF_INET]}
