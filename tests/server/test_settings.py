"""Settings payloads: wrapped or bare, invalid values fall back to defaults with a message."""

from __future__ import annotations

import pytest

from charcode.server.core.settings import Settings, parse_settings


def test_defaults():
    s, problems = parse_settings(None)
    assert s == Settings() and problems == []
    assert s.inline_max_length == 48 and s.device == "auto" and s.enabled_for("lua")


@pytest.mark.parametrize("wrap", [True, False])
def test_all_keys(wrap):
    raw = {
        "enable": False,
        "languages": ["python", "c"],
        "modelsDir": "/m",
        "device": "cpu",
        "temperature": 0.5,
        "inlineMaxLength": 20,
        "models": {"python": "/p.safetensors"},
        "trace": {"server": "verbose"},
    }
    s, problems = parse_settings({"charcode": raw} if wrap else raw)
    assert problems == []
    assert (s.enable, s.languages, s.models_dir, s.device, s.temperature, s.inline_max_length) == (
        False,
        ("python", "c"),
        "/m",
        "cpu",
        0.5,
        20,
    )
    assert dict(s.models) == {"python": "/p.safetensors"}
    assert not s.enabled_for("python")


def test_invalid_values_fall_back_one_by_one():
    s, problems = parse_settings(
        {
            "charcode": {
                "device": "tpu",
                "temperature": "hot",
                "inlineMaxLength": -3,
                "languages": "python",
                "enable": 1,
                "models": [],
                "modelsDir": 3,
            }
        }
    )
    assert s == Settings()
    assert len(problems) == 7
    assert any("charcode.device" in p and "'tpu'" in p for p in problems)


def test_not_an_object():
    s, problems = parse_settings({"charcode": [1, 2]})
    assert s == Settings() and len(problems) == 1
    s, problems = parse_settings({"charcode": {"inlineMaxLength": 10}, "other": 1})
    assert s.inline_max_length == 10 and problems == []


def test_language_filter():
    s, _ = parse_settings({"languages": ["python"]})
    assert s.enabled_for("python") and not s.enabled_for("c")


def test_language_ids_of_other_editors_map_to_charcode_ids():
    s, _ = parse_settings({"languages": ["shellscript", "javascript"]})
    assert s.enabled_for("sh") and s.enabled_for("javascriptreact") and not s.enabled_for("python")


def test_inline_min_probability_is_a_probability():
    s, problems = parse_settings({"charcode": {"inlineMinProbability": 0}})
    assert s.inline_min_probability == 0.0 and problems == []
    assert Settings().inline_min_probability == 0.5
    for bad in (1.5, -0.1, "high", True, float("nan")):
        s, problems = parse_settings({"charcode": {"inlineMinProbability": bad}})
        assert s.inline_min_probability == 0.5
        assert len(problems) == 1 and "charcode.inlineMinProbability" in problems[0]
