"""One typed suggest request (``support.settings``): the library, the CLI and the desk's API
take the same settings, with one set of bounds, and say the same about them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from bigramlm.errors import BigramLMError
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.schemas import SuggestRequest, build_schemas
from bigramlm.support.settings import MAX_N, SETTING_BOUNDS, SuggestSettings, bounds


def test_the_request_model_is_built_from_the_settings() -> None:
    fields = SuggestRequest.model_fields
    for name, b in SETTING_BOUNDS.items():
        assert fields[name].default == getattr(SuggestSettings(), name)
        assert fields[name].description == b.help
    request = SuggestRequest(message="hi", n=2, seed=5, length="short")
    assert request.settings() == SuggestSettings(n=2, seed=5, length="short")


@pytest.mark.parametrize("name,value", [("n", MAX_N + 1), ("n", 0), ("drafts", 0), ("drafts", MAX_N + 1), ("temperature", 5.5), ("top_p", 0.0),
                                        ("max_new_tokens", 1001), ("length", "tiny"), ("seed", -1)])
def test_one_set_of_bounds_for_the_library_and_the_api(name: str, value: object) -> None:
    with pytest.raises(BigramLMError) as info:
        SuggestSettings(**{name: value}).check()
    assert info.value.param == name
    with pytest.raises(ValidationError):
        SuggestRequest(message="hi", **{name: value})


def test_an_apps_limits_narrow_the_bounds_and_never_widen_them() -> None:
    narrow = build_schemas(ServerLimits(max_n=3)).SuggestRequest
    assert narrow.model_json_schema()["properties"]["n"]["maximum"] == 3
    drafts = narrow.model_json_schema()["properties"]["drafts"]["anyOf"]  # an integer, or null: left to the assistant
    assert {"type": "integer", "minimum": 1, "maximum": 3} in drafts  # max_n caps the rows decoded too
    wide = build_schemas(ServerLimits(max_n=50)).SuggestRequest
    assert wide.model_json_schema()["properties"]["n"]["maximum"] == MAX_N


def test_the_cli_refuses_what_the_api_refuses_before_loading_anything(tmp_path) -> None:
    args = [sys.executable, "-m", "bigramlm", "assist", str(tmp_path / "no-run"), "hello", "--n", str(MAX_N + 1)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --n must be {bounds('n').describe()} (got {MAX_N + 1})"
    helped = subprocess.run([sys.executable, "-m", "bigramlm", "assist", "--help"], capture_output=True, text=True, timeout=120)
    assert bounds("top_p").help in " ".join(helped.stdout.split())
