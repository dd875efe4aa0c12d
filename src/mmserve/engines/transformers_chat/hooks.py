"""Card-configured logits processors (``options.logits_processors`` of the transformers engines).

Each entry names a factory as ``"package.module:attribute"``. For every request the engine
calls ``factory(tokenizer, prompt_ids)`` and adds the result to the processors that run
before constrained decoding and the engine's sampler, so the grammar still holds. A
processor is the ``transformers.LogitsProcessor`` callable ``(input_ids, scores) -> scores``
(``input_ids`` include the prompt). Uses: banning words, biasing a domain vocabulary, or
scripting a tiny test model's output so that parsers are exercised end to end (see
``tests/helpers/scripted.py``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator

from mmserve.errors import EngineUnavailableError

ProcessorFactory = Callable[[Any, list[int]], Callable[[Any, Any], Any]]

TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _check_target(v: str) -> str:
    if not TARGET.match(v):
        raise ValueError(f"'{v}' must look like 'package.module:factory'")
    return v


ProcessorTarget = Annotated[str, AfterValidator(_check_target)]


def load_processor_factories(targets: list[str], *, model: str) -> list[ProcessorFactory]:
    factories = []
    for target in targets:
        module, attr = target.split(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise EngineUnavailableError(
                f"Model '{model}': options.logits_processors entry '{target}' cannot be imported ({e})."
            ) from None
        if not callable(obj):
            raise EngineUnavailableError(f"Model '{model}': options.logits_processors '{target}' is not callable.")
        factories.append(obj)
    return factories
