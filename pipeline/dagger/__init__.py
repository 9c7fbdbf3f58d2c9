"""Building through Dagger: the executor, its session handling and the shared API graph.

:mod:`pipeline.dagger.spec` plans a build (pure), :mod:`pipeline.dagger.graph` turns a plan into
Dagger API calls (shared with the Dagger module in ``.dagger/``),
:mod:`pipeline.dagger.connection` gets a session and :mod:`pipeline.dagger.executor` ties them
together as the ``dagger`` backend. Importing this package does not import the SDK.
"""
