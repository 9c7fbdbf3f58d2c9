"""``docker.env`` as a mapping: a dotenv file (``KEY=VALUE`` lines) is parsed
(:func:`parse_dotenv`), a list of ``KEY=VALUE`` strings is split (:func:`normalize_env`); a
mapping is left to the converter.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, describe_value
from pipeline.fieldpaths import Document, FieldPath

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_dotenv(text: str, *, file: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefix, ``#`` comments, single/double quotes allowed)."""
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not ENV_NAME.match(key):
            # never the line itself: a dotenv file holds values that may be secrets
            found = f"the key is {key[:40]!a}" if sep else "the line has no '='"
            raise ConfigError(
                f"expected KEY=VALUE with KEY made of letters, digits and '_' ({found}; "
                "values are not shown)",
                file=file,
                line=number,
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        result[key] = value
    return result


def normalize_env(doc: Document, raw: Any, path: FieldPath, base_dir: Path) -> Any:
    """Turn the list and dotenv forms of ``docker.env`` into a mapping; leave others to cattrs."""
    if isinstance(raw, str):
        try:
            env_file = Path(os.path.expandvars(raw)).expanduser()
        except RuntimeError:
            raise doc.error(path, f"cannot expand {raw.split('/', 1)[0]!r}: no such user") from None
        if not env_file.is_absolute():
            env_file = base_dir / env_file
        if not env_file.is_file():
            raise doc.error(
                path,
                f"{raw!r} is not a dotenv file (expected a mapping, a list of KEY=VALUE or the "
                "path of a .env file)",
            )
        try:
            text = env_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise doc.error(path, f"cannot read dotenv file {str(env_file)!r}: {exc}") from None
        return parse_dotenv(text, file=env_file)
    if isinstance(raw, list):
        env: dict[str, Any] = {}
        for index, item in enumerate(raw):
            if not isinstance(item, str):
                raise doc.error(
                    (*path, index), f"expected a KEY=VALUE string, got {describe_value(item)}"
                )
            if "=" not in item:
                raise doc.error((*path, index), f"expected KEY=VALUE, got {item!r}")
            key, _, value = item.partition("=")
            env[key.strip()] = value
        return env
    return raw
