"""Dockerfile rendering: the Jinja environment, templates, quoting filters, distro table and
template lint. The entry point is :func:`pipeline.rendering.render_dockerfile`."""
