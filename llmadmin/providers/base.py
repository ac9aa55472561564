"""What every provider type is made of: its general fields, option kinds and cross-field rules.

Each option kind owns its cleaning, its admin form field(s) and how it reads a posted value, so
forms never branch on a kind. Facts come from ../shared/PROVIDERS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.views.decorators.debug import sensitive_variables

from llmadmin.providers.catalog import ModelFacts, model_facts
from llmadmin.providers.contract import Connection
from llmadmin.providers.transport import ProviderClient

# The general sampling fields of a model, as named on LLMModel.
GENERAL_FIELDS = (
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
)
GENERAL_LABELS = {
    "max_output_tokens": "max output tokens",
    "temperature": "temperature",
    "top_p": "top P",
    "top_k": "top K",
    "presence_penalty": "presence penalty",
    "frequency_penalty": "frequency penalty",
}
SAMPLING = frozenset({"max_output_tokens", "temperature", "top_p"})
PENALTIES = frozenset({"presence_penalty", "frequency_penalty"})

SLUG_PATTERN = r"[a-z0-9][a-z0-9._-]*"
MODEL_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:/-]*"

# Of a value quoted in an error: a file's value may be as long as the file.
BRIEF_LENGTH = 40


def brief(value: Any) -> str:
    """A value for an error message: text or a number as written, cut short; anything else
    (a list, a mapping) named by its kind."""
    if isinstance(value, str | int | float):
        text = repr(value)
        if len(text) > BRIEF_LENGTH:
            return f"{text[:BRIEF_LENGTH]}… ({len(text)} characters)"
        return text
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a value of type {type(value).__name__}"


@dataclass(frozen=True)
class ModelSettings:
    """A model's request settings as a client needs them: plain values, no database row."""

    identifier: str
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


# --- Option kinds --------------------------------------------------------------------------


class DefaultYesNoSelect(forms.NullBooleanSelect):
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.choices = [("unknown", "Default"), ("true", "Yes"), ("false", "No")]


class SlugListField(forms.CharField):
    """A list of short strings, typed one per line or separated by commas."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 40})

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str] | None:
        text = super().to_python(value)
        items = [item.strip() for item in re.split(r"[,\n]", text or "") if item.strip()]
        return items or None


def as_stored(value: Any) -> Any:
    return value


@dataclass(frozen=True, kw_only=True)
class Option:
    """One provider-specific option, stored under `name` in LLMModel.provider_options.

    Its admin form field(s) are named from a prefix the form gives (`<type>__<name>`).
    """

    name: str
    label: str
    # Where the value goes in the request body: a dotted path such as "output_config.effort".
    path: str
    # The value as the request takes it, where that differs from the stored one.
    to_request: Callable[[Any], Any] = as_stored
    help_text: str = ""
    # Turns reasoning on or shapes it: refused for models the catalog says don't reason.
    reasoning: bool = False

    def clean(self, value: Any) -> Any:
        """The value to store, or ValidationError saying what is wrong."""
        raise NotImplementedError

    def form_field(self) -> forms.Field:
        raise NotImplementedError

    def form_fields(self, prefix: str) -> dict[str, forms.Field]:
        return {prefix: self.form_field()}

    def field_options(self) -> dict[str, Any]:
        return {"label": self.label, "help_text": self.help_text, "required": False}

    def posted_value(self, data: Mapping[str, Any], prefix: str) -> Any:
        """The value of the form's cleaned data, None when left at the default."""
        value = data.get(prefix)
        return None if value == "" else value

    def initial(self, prefix: str, value: Any) -> dict[str, Any]:
        return {prefix: value}

    def error_field(self, prefix: str) -> str:
        """The form field that shows this option's errors."""
        return prefix


@dataclass(frozen=True, kw_only=True)
class NumberOption(Option):
    min: int | float | None = None
    max: int | float | None = None

    def check_range(self, value: int | float) -> None:
        if self.min is not None and value < self.min:
            raise ValidationError(f"Must be at least {self.min}.")
        if self.max is not None and value > self.max:
            raise ValidationError(f"Must be at most {self.max}.")


@dataclass(frozen=True, kw_only=True)
class IntOption(NumberOption):
    def clean(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Enter a whole number.")
        self.check_range(value)
        return value

    def form_field(self) -> forms.Field:
        return forms.IntegerField(min_value=self.min, max_value=self.max, **self.field_options())


@dataclass(frozen=True, kw_only=True)
class BoolOption(Option):
    def clean(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value

    def form_field(self) -> forms.Field:
        return forms.NullBooleanField(widget=DefaultYesNoSelect, **self.field_options())


@dataclass(frozen=True, kw_only=True)
class ChoiceOption(Option):
    choices: tuple[str, ...]

    def clean(self, value: Any) -> str:
        if value not in self.choices:
            raise ValidationError(f"{brief(value)} is not one of: {', '.join(self.choices)}.")
        return value

    def form_field(self) -> forms.Field:
        choices = [("", "Default"), *((choice, choice) for choice in self.choices)]
        return forms.ChoiceField(choices=choices, **self.field_options())


@dataclass(frozen=True, kw_only=True)
class ListOption(Option):
    """A list of distinct strings, each matching `item_pattern`."""

    item_pattern: str
    item_description: str

    def clean(self, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValidationError("Enter a list.")
        for item in value:
            if not isinstance(item, str) or not re.fullmatch(self.item_pattern, item):
                raise ValidationError(f"{brief(item)} is not {self.item_description}.")
        if len(set(value)) != len(value):
            raise ValidationError("Each entry may appear only once.")
        return value

    def form_field(self) -> forms.Field:
        return SlugListField(**self.field_options())


def same_key(key: str) -> str:
    return key


@dataclass(frozen=True, kw_only=True)
class MappingOption(Option):
    """A value from `choices` for each of some `keys`: one select per key in the form."""

    keys: tuple[str, ...]
    choices: tuple[str, ...]
    # How a key reads in the form, e.g. HARM_CATEGORY_HATE_SPEECH -> Hate speech.
    key_label: Callable[[str], str] = same_key

    def clean(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValidationError("Enter a mapping of keys to values.")
        for key, item in value.items():
            if key not in self.keys:
                raise ValidationError(f"{brief(key)} is not one of: {', '.join(self.keys)}.")
            if item not in self.choices:
                raise ValidationError(
                    f"{brief(item)} for {key} is not one of: {', '.join(self.choices)}."
                )
        return value

    def form_fields(self, prefix: str) -> dict[str, forms.Field]:
        choices = [("", "Default"), *((choice, choice) for choice in self.choices)]
        return {
            f"{prefix}__{key}": forms.ChoiceField(
                label=f"{self.label}: {self.key_label(key)}",
                help_text=key,
                choices=choices,
                required=False,
            )
            for key in self.keys
        }

    def posted_value(self, data: Mapping[str, Any], prefix: str) -> Any:
        mapping = {key: data.get(f"{prefix}__{key}") for key in self.keys}
        return {key: value for key, value in mapping.items() if value} or None

    def initial(self, prefix: str, value: Any) -> dict[str, Any]:
        return {f"{prefix}__{key}": item for key, item in value.items()}

    def error_field(self, prefix: str) -> str:
        return f"{prefix}__{self.keys[0]}"


def set_options(body: dict[str, Any], options: Iterable[Option], values: Mapping[str, Any]) -> None:
    """Put each option's value into the request body at its path; an unset one is not sent
    (the provider's default applies)."""
    for option in options:
        value = values.get(option.name)
        if value is None:
            continue
        *parents, key = option.path.split(".")
        target = body
        for parent in parents:
            target = target.setdefault(parent, {})
        target[key] = option.to_request(value)


def value_at(body: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a request body (an option's path); None where there is
    none."""
    value: Any = body
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def with_value(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """The body with `value` at a dotted path: the objects on the way copied (the client's
    body is never changed), a value that is no object replaced by one."""
    key, _, rest = path.partition(".")
    if not rest:
        return {**body, key: value}
    inner = body.get(key)
    return {**body, key: with_value(inner if isinstance(inner, dict) else {}, rest, value)}


def with_defaults(
    body: dict[str, Any],
    defaults: list[tuple[str, Any]],
    refusals_of: Callable[[dict[str, Any]], dict[str, str]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """A gateway client's body with the admin's defaults (a value at a dotted path, each where
    the client set none), and what is refused of it (a message by request field). Each
    default is kept unless it adds a refusal: one the client's own values make invalid (the
    admin's temperature with the client's thinking) is left out, silently; one that makes
    them valid (the admin's effort none with the client's temperature) is kept. What is
    refused then is the client's own."""
    refused = refusals_of(body)
    for path, value in defaults:
        candidate = with_value(body, path, value)
        candidate_refused = refusals_of(candidate)
        if candidate_refused.keys() <= refused.keys():
            body, refused = candidate, candidate_refused
    return body, refused


# --- Provider types ------------------------------------------------------------------------

# A rule across fields: given the general fields (with the identifier and context limit), the
# cleaned options and the catalog's facts about the model (None when it isn't listed), yield
# (field or option name, message) for each conflict.
Rule = Callable[
    [Mapping[str, Any], Mapping[str, Any], ModelFacts | None], Iterator[tuple[str, str]]
]


def no_rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    return iter(())


@dataclass(frozen=True)
class ProviderType:
    slug: str
    label: str
    # The environment variable `seed_defaults --keys-from-env` reads the key from.
    key_env_var: str
    # May hold "{region}" (Bedrock); empty when every deployment has its own (Azure, compatible).
    default_base_url: str
    base_url_example: str
    region_required: bool
    temperature_max: float
    general_fields: frozenset[str]
    options: tuple[Option, ...]
    # How to call it: verify a key, list models, chat.
    client: type[ProviderClient]
    rules: Rule = no_rules
    # The rules, not the catalog's "takes no temperature", judge a temperature: OpenAI's
    # reasoning models take their default one, and some take any at reasoning effort none.
    temperature_by_rules: bool = False
    # How an account can authenticate, by name and label; the first is the default.
    auth_modes: Mapping[str, str] = field(default_factory=lambda: {"api_key": "API key"})
    # The models.dev provider whose models this type calls; empty when models are the
    # admin's own (a compatible server).
    catalog: str = ""
    # The current models `seed_defaults` creates, a curated list of ids: everything else about
    # them (display name, limits, prices) comes from the catalog, so a newer snapshot updates
    # what gets seeded.
    seeded_models: tuple[str, ...] = ()
    # The one of them marked default on the first seed; one type in the registry names one.
    seeded_default: str = ""
    # Why a general field the type doesn't take is refused, where there is more to say than
    # that it isn't supported (an API version that removed it).
    refused_fields: Mapping[str, str] = field(default_factory=dict)
    # The option that caps the answer as max output tokens does, when the type has one.
    answer_cap_option: str = ""

    def with_answer_room(self, settings: ModelSettings, tokens: int) -> ModelSettings:
        """The settings with room for an answer of `tokens` where they cap it lower: the cap
        raised as max output tokens, the option that also caps it dropped."""
        options = dict(settings.options)
        cap = options.pop(self.answer_cap_option, None) or settings.max_output_tokens or 0
        if tokens > cap:
            return replace(settings, max_output_tokens=tokens, options=options)
        return settings

    def facts(self, identifier: str) -> ModelFacts | None:
        """What the catalog knows of a model of this type; None when it isn't listed."""
        return model_facts(self.catalog, identifier)

    def answer_ceiling(self, settings: ModelSettings) -> int | None:
        """The most output tokens a translated request gets: the admin's cap, else what the
        catalog says the model writes at most. A client's larger max tokens is lowered to it,
        not refused: Claude Code asks 32,000 of whatever model it is given, which no model
        writes past its limit anyway."""
        cap = settings.options.get(self.answer_cap_option) or settings.max_output_tokens
        facts = self.facts(settings.identifier)
        return cap or (facts.output_limit if facts else None)

    @property
    def base_url_required(self) -> bool:
        return not self.default_base_url

    @property
    def options_by_name(self) -> dict[str, Option]:
        return {option.name: option for option in self.options}

    def option_prefix(self, option: Option) -> str:
        """The name of an option's admin form field(s): `<type>__<option>`."""
        return f"{self.slug.replace('-', '_')}__{option.name}"

    def effective_base_url(self, *, base_url: str, region: str) -> str:
        return (base_url or self.default_base_url).format(region=region).rstrip("/")

    @sensitive_variables("credentials")
    def connect(
        self, *, base_url: str, region: str, auth: str = "api_key", **credentials: str
    ) -> ProviderClient:
        """A client for one account of this type; raises ProviderError without credentials.

        `credentials`: api_key, or the AWS access keys (see Connection).
        """
        return self.client(
            Connection(
                base_url=self.effective_base_url(base_url=base_url, region=region),
                region=region,
                base_url_override=base_url.rstrip("/"),
                auth=auth,
                **credentials,
            ),
            options=self.options,
        )

    def check_model(
        self, general: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """Validate a model's general fields and options for this type and for the model.

        The model's own facts come from the catalog (by `general["identifier"]`); a model
        the catalog doesn't list is checked by its type's rules only; with
        `general["override_catalog_limit"]`, the catalog's output limit doesn't apply. Returns
        the options to store (unset ones dropped) and the errors, keyed by general field name
        or option name.
        """
        errors: dict[str, list[str]] = {}
        facts = self.facts(general.get("identifier") or "")
        for name in GENERAL_FIELDS:
            if general.get(name) is not None and name not in self.general_fields:
                label = capfirst(GENERAL_LABELS[name])
                errors.setdefault(name, []).append(
                    self.refused_fields.get(name, f"{label} is not supported by {self.label}.")
                )
        # A field the type doesn't take has its one reason: the catalog's says no more.
        general = {
            name: value
            for name, value in general.items()
            if name not in GENERAL_FIELDS or name in self.general_fields
        }
        temperature = general.get("temperature")
        if temperature is not None and temperature > self.temperature_max:
            errors.setdefault("temperature", []).append(
                f"{self.label} accepts a temperature from 0 to {self.temperature_max:g}."
            )

        known = self.options_by_name
        cleaned: dict[str, Any] = {}
        for name, value in options.items():
            if name not in known:
                errors.setdefault(name, []).append(f"Unknown option for {self.label}.")
            elif value is not None:
                try:
                    cleaned[name] = known[name].clean(value)
                except ValidationError as error:
                    errors.setdefault(name, []).extend(error.messages)
        refused = dict[str, list[str]]()
        for name, message in catalog_refusals(facts, general, cleaned, known) if facts else ():
            if name == "temperature" and self.temperature_by_rules:
                continue
            refused.setdefault(name, []).append(message)
        # The rules read the cleaned options: only when every value is valid. A field the
        # catalog already refuses needs no second reason.
        if not errors:
            for name, message in self.rules(general, cleaned, facts):
                if name not in refused:
                    errors.setdefault(name, []).append(message)
        for name, messages in refused.items():
            errors.setdefault(name, []).extend(messages)
        return cleaned, errors


def catalog_refusals(
    facts: ModelFacts,
    general: Mapping[str, Any],
    options: Mapping[str, Any],
    known: Mapping[str, Option],
) -> Iterator[tuple[str, str]]:
    """What the model refuses by the catalog's data: its output limit, a temperature,
    reasoning options."""
    max_output = general.get("max_output_tokens")
    limit = None if general.get("override_catalog_limit") else facts.output_limit
    if max_output is not None and limit and max_output > limit:
        yield (
            "max_output_tokens",
            f"{facts.name} writes at most {facts.output_limit} tokens (models.dev).",
        )
    if general.get("temperature") is not None and facts.temperature is False:
        yield "temperature", f"{facts.name} takes no temperature: leave it empty."
    if not facts.reasoning:
        for name, value in options.items():
            # Turning reasoning off is harmless: a model without thinking takes
            # thinking "disabled" (the Anthropic SDK's ThinkingTypes), gateways reasoning off.
            if name in known and known[name].reasoning and value not in (False, "disabled"):
                yield name, f"{facts.name} doesn't reason: leave this at Default."
