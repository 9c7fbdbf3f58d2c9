"""Dagger module for bento-pipeline: render bentos and build, export or publish their images."""

from .main import BentoPipeline as BentoPipeline
