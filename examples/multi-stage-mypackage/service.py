"""The service ``service: "service:svc"`` points at: a placeholder.

This example demonstrates its image, not its service; examples/hello has a runnable HTTP service.
"""

svc = None
