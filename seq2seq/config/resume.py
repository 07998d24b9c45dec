"""Saved configs against the schemas: what a resumed run must keep, and an older run's or
checkpoint's config completed with the defaults of options added since it was written."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seq2seq.config.schemas import ModelConfig, TrainConfig, nested_schema


def resume_mismatch(
    saved: dict[str, Any], now: dict[str, Any], schema: type = TrainConfig, prefix: str = ""
) -> str | None:
    """The first option that differs between a saved run's config and this one although a resumed
    run must keep it (every option but those a schema lists in ``RESUME_MAY_CHANGE``), or None.
    Both are plain dicts of a :class:`TrainConfig`; see :func:`with_defaults` for old saved ones."""
    for f in dataclasses.fields(schema):
        if f.name in getattr(schema, "RESUME_MAY_CHANGE", ()):
            continue
        old, new, nested = saved.get(f.name), now.get(f.name), nested_schema(f)
        if nested is not None and isinstance(old, dict) and isinstance(new, dict):
            found = resume_mismatch(old, new, nested, f"{prefix}{f.name}.")
            if found:
                return found
        elif old != new:
            return f"{prefix}{f.name}"
    return None


def known_options(saved: Any, schema: type) -> Any:
    """``saved`` without the keys ``schema`` lacks (an older version let ``+key=value`` into a
    run's config; they never changed what it trained)."""
    if not isinstance(saved, dict):
        return saved
    fields = {f.name: f for f in dataclasses.fields(schema)}
    kept = {}
    for key, value in saved.items():
        if key in fields:
            nested = nested_schema(fields[key])
            kept[key] = known_options(value, nested) if nested is not None else value
    return kept


def with_defaults(saved: dict[str, Any], schema: type = TrainConfig) -> dict[str, Any] | None:
    """A saved config with the defaults of options added since it was written (they give the
    same run) and without keys the schema lacks, or None when a value does not fit its type."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), known_options(saved, schema))
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException:
        return None


def saved_model_config(model: Any) -> Any:
    """A checkpoint's model section over the schema's defaults: options added after it was
    written take their defaults, which rebuild the model it was trained as."""
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), model)
