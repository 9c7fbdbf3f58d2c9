"""A local library the multi-stage template packages in a build stage."""

GREETING = "hello from mypackage"
