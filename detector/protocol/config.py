"""The config base: strict pydantic sections, YAML loading, one-line errors.

Every settings tree of the project (a camera's pipeline, a live site, the backend) is built
from `Section`s and loaded through `load_config`, so unknown keys and wrong types are errors
that name the key and the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from detector.protocol.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def format_error(err: ValidationError, origin: str, where: Callable[[list], tuple[str, list]] | None = None) -> str:
    """One line for a validation error: `origin: key.path: message (and N more)`.

    `where(loc)` may rename the start of the location (a camera's name instead of its list
    index) and returns (origin, rest of the location)."""
    first = err.errors()[0]
    loc = list(first["loc"])
    if where is not None:
        origin, loc = where(loc)
    key = ".".join(str(p) for p in loc) or "(top level)"
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{origin}: {key}: {msg}{more}"


def load_yaml(path: Path) -> Any:
    """Read a YAML file, turning every failure into a one-line UserError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read config: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None


def require_mapping(data: Any, origin: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(model: type[M], data: Any, origin: str) -> M:
    data = require_mapping(data, origin)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(format_error(e, origin)) from None


def load_config(model: type[M], path: Path | None) -> M:
    """Load and validate a config file into `model`; no path gives the defaults."""
    if path is None:
        return model()
    return validate(model, load_yaml(path), str(path))
