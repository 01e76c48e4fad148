"""The base of every config model: unknown keys are errors and values are what they say.

Every section of a run's config (``gankit.config``) and every variant's ``Params`` (data sets,
network families, objectives, plug-ins) derives from :class:`Params`, which validates in
pydantic's strict mode: a boolean is never read as a number (``--set train.steps=true`` is an
error, not 1 step), a float never as an integer (``train.steps=1e3`` or ``2.0`` is an error:
write ``1000``), a number never as a string. The one widening kept is an integer where a
float is expected (``optim.G.lr=1`` is 1.0), which loses nothing.

Types for fields strict mode alone would get wrong:

* :data:`FloatPair`: a pair of floats given as a YAML list (``betas: [0.5, 0.999]``); strict
  mode would accept only a Python tuple, which neither YAML nor a saved config produces;
* :data:`Channels`: 1 or 3 image channels; pydantic compares literals with ``==``, so without
  the guard ``True`` would be taken for 1;
* :data:`PathStr`: a file or folder path, made absolute (``~`` expanded) when validated, so
  the config saved with a run names the same file wherever the run is read from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat


class Params(BaseModel):
    """A config model: unknown keys forbidden, values validated strictly (see the module)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def not_bool(value: Any) -> Any:
    """``value`` unchanged, unless it is a boolean (ValueError): for literal number fields."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not the boolean {str(value).lower()}")
    return value


FloatPair = Annotated[tuple[StrictFloat, StrictFloat], Field(strict=False)]
"""Two floats, from a list or a tuple (each element strict)."""

Channels = Annotated[Literal[1, 3], BeforeValidator(not_bool)]
"""Image channels: 1 (grayscale) or 3 (RGB); booleans refused."""


def absolute_path(value: str) -> str:
    """``value`` with ``~`` expanded, made absolute against the working directory, kept as
    written otherwise (no ``..`` collapsed, no link followed: either could change what it
    names); "" unchanged (the field's own check refuses it)."""
    return str(Path(os.path.expanduser(value)).absolute()) if value else value


PathStr = Annotated[str, AfterValidator(absolute_path)]
"""A path given relative to where the command runs, kept absolute in the saved config."""
