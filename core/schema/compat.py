"""Reading records a later 1.x release wrote: minor versions of the schema only add fields.

A reader keeps every field it knows and leaves out the ones it does not, saying which (a record it writes back is
one of its own version, without them); a record of another major version stays unreadable. A record that claims
this reader's own version keeps its unknown fields an error: there they are typos or damage.
"""

from __future__ import annotations

import re
import types
import typing
import warnings
from typing import Any

from pydantic import BaseModel

_VERSION = re.compile(r"(\d+)\.(\d+)")


def _major_minor(version: Any) -> tuple[int, int] | None:
    found = _VERSION.fullmatch(version) if isinstance(version, str) else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def is_later_minor(version: Any, own: str) -> bool:
    """Whether ``version`` is a later minor version of the same major version as ``own`` (``1.3`` for ``1.0``)."""
    theirs, ours = _major_minor(version), _major_minor(own)
    return theirs is not None and ours is not None and theirs[0] == ours[0] and theirs[1] > ours[1]


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The schema model a field holds (alone, in a list, or optional), or None for free-form values."""
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, BaseModel) else None
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _known_only(value: Any, model: type[BaseModel], path: str, dropped: list[str]) -> Any:
    """``value`` (a record of ``model``, or a list of them) without the fields ``model`` does not have."""
    if isinstance(value, list):
        return [_known_only(item, model, f"{path}[]", dropped) for item in value]
    if not isinstance(value, dict):
        return value  # (the schema's own check names what is wrong with it)
    fields = model.model_fields
    kept: dict[str, Any] = {}
    for key, item in value.items():
        field = fields.get(key)
        where = f"{path}.{key}" if path else key
        if field is None:
            if where not in dropped:
                dropped.append(where)
            continue
        inner = _nested_model(field.annotation)
        kept[key] = item if inner is None else _known_only(item, inner, where, dropped)
    return kept


def readable(data: dict[str, Any], model: type[BaseModel], own_version: str, *, where: str) -> dict[str, Any]:
    """``data`` as this release reads it: a record of a later minor version without the fields this release does
    not know (a warning names them and ``where``), marked as of ``own_version``; any other record as it is."""
    version = data.get("schema_version")
    if not is_later_minor(version, own_version):
        return data
    dropped: list[str] = []
    known = _known_only(data, model, "", dropped)
    known["schema_version"] = own_version
    if dropped:  # (one warning per file and set of fields: a record's line number left out of it)
        shown = ", ".join(dropped[:8]) + (f" and {len(dropped) - 8} more" if len(dropped) > 8 else "")
        warnings.warn(f"{_RECORD_NUMBER.sub('', where)}: written by a later agentracer (schema {version}); read as "
                      f"schema {own_version} without the fields it does not know: {shown}", stacklevel=3)
    return known


_RECORD_NUMBER = re.compile(r"(:\d+|#\d+)$")
