"""The seed document's Dockerfile-template examples: each is a directory under examples/ with
its own bentofile, rendered verbatim (tests/render/test_golden.py) and lint-clean
(tests/test_examples.py)."""

SEED_EXAMPLES = (
    "echo-block",
    "aws-env-vars",
    "aws-secret-mount",
    "multi-stage-mypackage",
    "custom-entrypoint",
    "custom-user",
)
