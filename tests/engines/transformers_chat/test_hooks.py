"""options.logits_processors: factories are imported at load; a bad one makes the model unavailable (503)."""

from __future__ import annotations

import pytest

from mmserve.engines.transformers_chat.hooks import load_processor_factories
from mmserve.errors import EngineUnavailableError
from tests.helpers.scripted import ScriptedReplies


def test_factories_are_imported() -> None:
    assert load_processor_factories(["tests.helpers.scripted:ScriptedReplies"], model="m") == [ScriptedReplies]


@pytest.mark.parametrize(
    "target,fragment",
    [
        ("no_such_package.mod:Factory", "cannot be imported"),
        ("tests.helpers.scripted:NoSuchName", "cannot be imported"),
        ("tests.helpers.scripted:BOOST", "not callable"),
    ],
)
def test_bad_factories_are_clear_errors(target: str, fragment: str) -> None:
    with pytest.raises(EngineUnavailableError) as e:
        load_processor_factories([target], model="m")
    assert fragment in e.value.message and "options.logits_processors" in e.value.message
