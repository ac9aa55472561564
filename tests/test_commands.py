"""manage.py seed_defaults, set_provider_key (backup keys too), check_providers, check_models
and ensure_superuser, with several accounts of one type."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from llmadmin.key_pools import pool_of
from llmadmin.models import BackupKey, KeyFault, LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from tests.factories import BackupKeyFactory, LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import fake_for, serve

pytestmark = pytest.mark.django_db

KEY = "sk-ant-api03-SEEDSECRET-0987654321"


def run(*args: str, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    extra = {} if stdin is None else {"stdin": io.StringIO(stdin)}
    call_command(*args, stdout=out, stderr=err, **extra)
    return out.getvalue(), err.getvalue()


def test_seed_creates_a_provider_of_every_type_and_the_catalog_with_one_default():
    out, _ = run("seed_defaults")

    assert set(Provider.objects.values_list("type", flat=True)) == set(PROVIDER_TYPES)
    assert not Provider.objects.filter(api_key__isnull=False).exists()
    assert LLMModel.objects.count() == sum(
        len(provider_type.seeded_models) for provider_type in PROVIDER_TYPES.values()
    )
    default = LLMModel.objects.get(is_default=True)
    assert (default.provider.type, default.identifier) == ("anthropic", "claude-sonnet-4-6")
    models = LLMModel.objects.count()
    assert f"Catalogs seeded: {len(PROVIDER_TYPES)}; models created: {models}." in out


def test_seed_is_idempotent():
    run("seed_defaults")
    before = list(LLMModel.objects.values().order_by("pk"))

    out, _ = run("seed_defaults")

    assert list(LLMModel.objects.values().order_by("pk")) == before
    assert Provider.objects.count() == len(PROVIDER_TYPES)
    assert "Catalogs seeded: 0; models created: 0." in out


def test_a_rerun_keeps_an_admins_edits_deletions_and_default_choice():
    run("seed_defaults")
    edited = LLMModel.objects.get(identifier="gpt-5.5", provider__type="openai")
    edited.display_name = "Our GPT-5.5"
    edited.context_limit = 300_000
    edited.save()
    LLMModel.objects.filter(identifier="gpt-5.4-mini", provider__type="openai").delete()
    LLMModel.objects.filter(is_default=True).delete()
    Provider.objects.filter(type="google").update(enabled=False, base_url="http://proxy:1")

    run("seed_defaults")

    edited.refresh_from_db()
    assert (edited.display_name, edited.context_limit) == ("Our GPT-5.5", 300_000)
    assert not LLMModel.objects.filter(identifier="gpt-5.4-mini", provider__type="openai").exists()
    assert not LLMModel.objects.filter(is_default=True).exists()
    google = Provider.objects.get(type="google")
    assert (google.enabled, google.base_url) == (False, "http://proxy:1")


def test_seed_takes_keys_from_the_environment_and_never_prints_them(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY + "-or")

    out, err = run("seed_defaults", "--keys-from-env")

    assert Provider.objects.get(type="anthropic").api_key == KEY
    assert Provider.objects.get(type="openrouter").api_key == KEY + "-or"
    assert Provider.objects.get(type="openai").api_key is None
    assert "API key set for Anthropic from the environment." in out
    assert "SEEDSECRET" not in out + err


def test_seed_never_replaces_a_key_an_admin_set(monkeypatch):
    run("seed_defaults")
    run("set_provider_key", "anthropic", stdin="sk-admin-key\n")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    run("seed_defaults", "--keys-from-env")

    assert Provider.objects.get(type="anthropic").api_key == "sk-admin-key"


def test_seed_ignores_keys_in_the_environment_without_the_flag(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    run("seed_defaults")

    assert Provider.objects.get(type="anthropic").api_key is None


def test_seed_reports_a_key_it_cannot_use_without_printing_it(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)  # Azure needs an endpoint first

    out, err = run("seed_defaults", "--keys-from-env")

    assert Provider.objects.get(type="azure").api_key is None
    assert "API key for Azure OpenAI not set" in err
    assert "SEEDSECRET" not in out + err


def test_set_provider_key_reads_the_key_from_standard_input():
    out, err = run("set_provider_key", "openai", stdin=KEY + "\n")

    assert Provider.objects.get(type="openai").api_key == KEY
    assert out == "API key for OpenAI saved.\n"
    assert "SEEDSECRET" not in out + err


def test_set_provider_key_refuses_a_key_with_spaces_and_keeps_the_old_one():
    run("set_provider_key", "openai", stdin="sk-old\n")

    with pytest.raises(CommandError, match="space or line break") as error:
        run("set_provider_key", "openai", stdin=" sk-new-SEEDSECRET\n")

    assert "SEEDSECRET" not in str(error.value)
    assert Provider.objects.get(type="openai").api_key == "sk-old"


def test_set_provider_key_refuses_a_key_file_that_is_not_utf8_and_keeps_the_old_one():
    run("set_provider_key", "openai", stdin="sk-old\n")
    # Standard input as Python opens it for `< keyfile` (UTF-8, strict), a Latin-1 é in it.
    stdin = io.TextIOWrapper(io.BytesIO(b"sk-caf\xe9-SEEDSECRET\n"), encoding="utf-8")

    with pytest.raises(CommandError, match="not UTF-8 text: nothing was saved"):
        call_command("set_provider_key", "openai", stdin=stdin, stdout=io.StringIO())

    assert Provider.objects.get(type="openai").api_key == "sk-old"


def test_set_provider_key_refuses_empty_input():
    with pytest.raises(CommandError, match="No key on standard input"):
        run("set_provider_key", "openai", stdin="")


def test_set_provider_key_clear_removes_the_key():
    run("set_provider_key", "openai", stdin="sk-old\n")

    out, _ = run("set_provider_key", "openai", "--clear")

    assert Provider.objects.get(type="openai").key_state == "missing"
    assert out == "API key for OpenAI removed.\n"


def test_set_provider_key_takes_no_key_as_an_argument():
    with pytest.raises(CommandError):
        run("set_provider_key", "openai", KEY)


def internal_vllm(**fields: object) -> Provider:
    """A second OpenAI Compatible account beside the type's first."""
    return ProviderFactory(openai_compat=True, name="Internal vLLM", **fields)


@pytest.mark.parametrize(
    ("account", "saved_on"),
    [
        pytest.param([], "OpenAI Compatible", id="without --account: the type's first account"),
        pytest.param(["--account", "Internal vLLM"], "Internal vLLM", id="the account named"),
        pytest.param(["--account", "INTERNAL vllm"], "Internal vLLM", id="the name in any case"),
    ],
)
def test_set_provider_key_sets_the_key_of_one_account(account, saved_on):
    ProviderFactory(openai_compat=True, no_key=True)
    internal_vllm(no_key=True)
    accounts = Provider.objects.count()

    out, _ = run("set_provider_key", "openai-compat", *account, stdin=KEY + "\n")

    keys = dict(Provider.objects.filter(type="openai-compat").values_list("name", "api_key"))
    assert keys == {"OpenAI Compatible": None, "Internal vLLM": None, saved_on: KEY}
    assert Provider.objects.count() == accounts
    label = Provider.objects.get(name=saved_on).label
    assert out == f"API key for {label} saved.\n"


def test_set_provider_key_finds_an_account_by_a_non_ascii_name_in_another_case():
    zurich = ProviderFactory(azure=True, name="Azure Zürich", no_key=True)

    run("set_provider_key", "azure", "--account", "AZURE ZÜRICH", stdin=KEY + "\n")

    zurich.refresh_from_db()
    assert zurich.api_key == KEY


def test_set_provider_key_clears_only_the_account_named():
    first = ProviderFactory(openai_compat=True, api_key="sk-first")
    internal_vllm(api_key="sk-internal")

    out, _ = run("set_provider_key", "openai-compat", "--account", "Internal vLLM", "--clear")

    assert Provider.objects.get(name="Internal vLLM").key_state == "missing"
    assert Provider.objects.get(pk=first.pk).api_key == "sk-first"
    assert out == "API key for Internal vLLM (OpenAI Compatible) removed.\n"


@pytest.mark.parametrize(
    ("provider_type", "name", "message"),
    [
        pytest.param(
            "openai-compat",
            "LiteLLM",
            "No OpenAI Compatible account is named 'LiteLLM'. "
            "OpenAI Compatible accounts: OpenAI Compatible, Internal vLLM.",
            id="a name no account has",
        ),
        pytest.param(
            "openai",
            "Internal vLLM",
            "No OpenAI account is named 'Internal vLLM' (that account's type is OpenAI "
            "Compatible). OpenAI accounts: OpenAI.",
            id="an account of another type",
        ),
    ],
)
def test_set_provider_key_refuses_an_account_it_cannot_find_and_creates_none(
    provider_type, name, message
):
    internal_vllm()
    before = list(Provider.objects.values("pk", "name", "api_key").order_by("pk"))

    with pytest.raises(CommandError) as refused:
        run("set_provider_key", provider_type, "--account", name, stdin=KEY + "\n")

    assert str(refused.value) == message
    assert list(Provider.objects.values("pk", "name", "api_key").order_by("pk")) == before


def test_set_provider_key_never_creates_a_types_account():
    Provider.objects.filter(type="openai").delete()

    with pytest.raises(CommandError, match=r"^OpenAI has no account: add one in the admin\.$"):
        run("set_provider_key", "openai", stdin=KEY + "\n")

    assert not Provider.objects.filter(type="openai").exists()


def test_seed_fills_only_each_types_first_account_not_one_added_beside_it_once_first():
    second = ProviderFactory(openai=True, name="OpenAI EU")

    out, _ = run("seed_defaults")
    run("seed_defaults")
    seeded = set(LLMModel.objects.values_list("provider__name", flat=True))
    Provider.objects.filter(type="openai", name="OpenAI").delete()  # the EU one is first now
    run("seed_defaults")

    assert "OpenAI" in seeded
    assert "OpenAI EU" not in seeded
    assert f"Catalogs seeded: {len(PROVIDER_TYPES)};" in out
    assert not LLMModel.objects.filter(provider=second).exists()


def test_seed_takes_a_key_from_the_environment_for_the_account_slugged_by_its_type_only(
    monkeypatch,
):
    ProviderFactory(openai=True, name="OpenAI EU", no_key=True)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    run("seed_defaults", "--keys-from-env")

    keys = dict(Provider.objects.filter(type="openai").values_list("name", "api_key"))
    assert keys == {"OpenAI": KEY, "OpenAI EU": None}


def test_the_environments_key_never_lands_on_an_account_it_was_not_given_to(monkeypatch):
    # Once the account the key was given to (at LiteLLM's URL) is deleted, the internal vLLM
    # is the type's first account: the key must not go to vLLM's URL.
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", KEY)
    litellm = ProviderFactory(openai_compat=True, no_key=True)  # slugged openai-compat
    vllm = internal_vllm(base_url="http://vllm/v1", no_key=True)
    run("seed_defaults", "--keys-from-env")
    litellm.refresh_from_db()
    assert litellm.api_key == KEY
    litellm.delete()

    out, err = run("seed_defaults", "--keys-from-env")

    vllm.refresh_from_db()
    assert vllm.api_key is None
    assert err == (
        "OPENAI_COMPATIBLE_API_KEY not used: it is for the OpenAI Compatible account slugged "
        "openai-compat, and there is none.\n"
    )
    assert "SEEDSECRET" not in out + err


def test_check_providers_prints_one_line_per_account():
    with (
        serve(fake_for("openai-compat", KEY)) as good,
        serve(fake_for("openai-compat", "sk-other")) as bad,
    ):
        provider_at("openai-compat", good.url, api_key=KEY)
        provider_at("openai-compat", bad.url, api_key=KEY, name="Internal vLLM")
        out = io.StringIO()

        with pytest.raises(SystemExit):
            call_command("check_providers", stdout=out)

    lines = out.getvalue().splitlines()
    width = len("Internal vLLM (OpenAI Compatible)")
    assert (
        f"{'OpenAI Compatible':<{width}}  verified     The provider accepted the API key." in lines
    )
    rejected = "The provider rejected the API key (401)."
    assert f"Internal vLLM (OpenAI Compatible)  rejected     {rejected}" in lines
    assert len(lines) == 1 + len(PROVIDER_TYPES) + 1
    assert len(good.requests) == len(bad.requests) == 1


def test_check_models_names_each_models_account_in_one_query(django_assert_num_queries):
    second = ProviderFactory(anthropic=True, name="Claude EU")
    LLMModelFactory(provider=second, identifier="claude-from-the-future", display_name="Future")
    for name in ("Claude US", "Claude Asia"):
        LLMModelFactory(provider=ProviderFactory(anthropic=True, name=name))

    with django_assert_num_queries(1):
        code, out = check_models()

    assert code == 0
    assert out.splitlines()[0] == "Claude EU (Anthropic) / claude-from-the-future (Future)"


def check_models() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("check_models", stdout=out)
    except SystemExit as stopped:
        return stopped.code, out.getvalue()
    return 0, out.getvalue()


def test_ensure_superuser_creates_one_admin_login_once(settings, tmp_path):
    settings.BASE_DIR = tmp_path

    out, _ = run("ensure_superuser")
    second, _ = run("ensure_superuser")

    password = (tmp_path / "var" / "admin-password").read_text().strip()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert (tmp_path / "var" / "admin-password").stat().st_mode & 0o077 == 0
    assert password in out
    assert second == "A superuser exists already.\n"


# --- backup keys from the command line ------------------------------------------------------

BACKUP = "sk-proj-BACKUPSECRET-0001"


def backup_keys(provider: Provider) -> list[tuple[int, str, str | None]]:
    """The account's backup keys as (order, name, key)."""
    return [(b.position, b.name, b.api_key) for b in BackupKey.objects.filter(provider=provider)]


def test_a_backup_key_is_read_from_standard_input_and_added_after_the_others():
    provider = ProviderFactory(openai=True, api_key="sk-own")
    BackupKeyFactory(provider=provider, position=4, name="Admin's", api_key="sk-admins")

    out, err = run("set_provider_key", "openai", "--backup", "Team A", stdin=BACKUP + "\n")

    assert out == "Backup key 5 (Team A) of OpenAI added.\n"
    assert "BACKUPSECRET" not in out + err
    assert backup_keys(provider) == [(4, "Admin's", "sk-admins"), (5, "Team A", BACKUP)]
    # Entered for the account's address: the next call may send it, after the others.
    provider.refresh_from_db()
    assert [key.credentials["api_key"] for key in pool_of(provider)] == [
        "sk-own",
        "sk-admins",
        BACKUP,
    ]


def test_setting_a_backup_key_again_by_its_name_replaces_it_and_tries_it_again():
    provider = ProviderFactory(openai_compat=True, name="Internal vLLM", api_key="sk-own")
    vllm = ["openai-compat", "--account", "internal vllm"]
    run("set_provider_key", *vllm, "--backup", "Team A", stdin="sk-old-backup\n")
    BackupKey.objects.update(cooling_reason=KeyFault.REJECTED, last_used_at=timezone.now())
    # Moved since: the key was entered for the old address, and is not sent.
    provider.base_url = "http://vllm-2:8000/v1"
    provider.save()
    assert len(pool_of(provider)) == 1

    out, _ = run("set_provider_key", *vllm, "--backup", "TEAM a", stdin=BACKUP + "\n")

    assert out == "Backup key 1 (Team A) of Internal vLLM (OpenAI Compatible) replaced.\n"
    backup = BackupKey.objects.get()
    assert (backup.name, backup.api_key, backup.cooling_reason) == ("Team A", BACKUP, "")
    assert [key.credentials["api_key"] for key in pool_of(provider)] == ["sk-own", BACKUP]


def test_clear_with_backup_deletes_only_that_backup_key():
    provider = ProviderFactory(openai=True, api_key="sk-own")
    BackupKeyFactory(provider=provider, position=1, name="Team A")
    BackupKeyFactory(provider=provider, position=2, name="Team B", api_key="sk-team-b")

    out, _ = run("set_provider_key", "openai", "--backup", "team a", "--clear")

    assert out == "Backup key 1 (Team A) of OpenAI deleted.\n"
    assert backup_keys(provider) == [(2, "Team B", "sk-team-b")]
    assert Provider.objects.get(pk=provider.pk).api_key == "sk-own"


def test_clearing_a_backup_key_the_account_lacks_names_those_it_has_never_a_key():
    provider = ProviderFactory(openai=True)
    BackupKeyFactory(provider=provider, name="Team B", api_key=BACKUP)
    BackupKeyFactory(provider=provider, api_key=BACKUP + "-2")

    with pytest.raises(CommandError) as refused:
        run("set_provider_key", "openai", "--backup", "Team A", "--clear")

    assert str(refused.value) == (
        "OpenAI has no backup key named 'Team A'. "
        "Its backup keys: Team B, 1 without a name (admin only)."
    )
    assert BackupKey.objects.count() == 2


# A backup key refused: the error says which field and why, never the key; nothing is stored.
REFUSED_BACKUP_KEYS = [
    pytest.param("Team A", " sk-BACKUPSECRET-spaced", "API key: The key starts or ends with a "
                 "space or line break: paste the key alone.", id="a key with spaces"),
    pytest.param("Team A", "sk-own-BACKUPSECRET", "API key: OpenAI holds this key already: a "
                 "backup key must be another.", id="the account's own key"),
    pytest.param("Team A", "sk-BACKUPSECRET-b", "API key: OpenAI holds this key already: a "
                 "backup key must be another.", id="another backup key's"),
    pytest.param("Team A ", BACKUP, "Name: Remove the spaces before or after the text.",
                 id="a name with spaces around it"),
    pytest.param("Team\u202eA", BACKUP, "Name: Remove the text-direction control U+202E: it "
                 "reorders the text.", id="a name that reorders text"),
    pytest.param("Team " * 20 + "A", BACKUP, "Name: Ensure this value has at most 100 "
                 "characters (it has 101).", id="a long name"),
    pytest.param("", BACKUP, "--backup takes the backup key's name: it is found again by it.",
                 id="no name"),
    pytest.param(BACKUP + "abcdefghijklmnopqrstuvwxyz", "sk-new",
                 "--backup takes the backup key's name, and this reads like a key: the key is "
                 "read from standard input, never from the command line. If it was a key, it is "
                 "in your shell's history now: replace it at the provider.",
                 id="the key where its name belongs"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "key", "message"), REFUSED_BACKUP_KEYS)
def test_a_backup_key_that_cannot_be_stored_is_refused_by_field_and_nothing_is_stored(
    name, key, message
):
    provider = ProviderFactory(openai=True, api_key="sk-own-BACKUPSECRET")
    BackupKeyFactory(provider=provider, position=1, name="Team B", api_key="sk-BACKUPSECRET-b")
    before = backup_keys(provider)

    with pytest.raises(CommandError) as refused:
        run("set_provider_key", "openai", "--backup", name, stdin=key + "\n")

    assert str(refused.value) == message
    assert "BACKUPSECRET" not in str(refused.value)
    assert backup_keys(provider) == before


def test_a_backup_key_needs_a_key_on_standard_input():
    ProviderFactory(openai=True)

    with pytest.raises(CommandError, match="No key on standard input"):
        run("set_provider_key", "openai", "--backup", "Team A", stdin="")

    assert not BackupKey.objects.exists()


def test_an_account_signing_in_with_iam_access_keys_gets_its_backup_keys_in_the_admin():
    ProviderFactory(
        bedrock=True,
        api_key=None,
        auth="aws_keys",
        aws_access_key_id="AKIAOWNKEY0000000000",
        aws_secret_access_key="own-secret",
    )

    with pytest.raises(CommandError) as refused:
        run("set_provider_key", "bedrock", "--backup", "Team A", stdin=BACKUP + "\n")

    assert str(refused.value) == (
        "AWS Bedrock does not sign in with an API key (IAM access key): add its backup keys in "
        "the admin."
    )
    assert not BackupKey.objects.exists()


def test_check_providers_shows_each_accounts_backup_keys_states_never_a_key():
    with serve(fake_for("openai-compat", KEY)) as good:
        provider = provider_at("openai-compat", good.url, api_key=KEY)
        states = ["Ready", "Ready too", "Cooling", "Refused", "Moved", "Unreadable"]
        for position, name in enumerate(states):
            BackupKeyFactory(
                provider=provider,
                position=position,
                name=name,
                api_key=BACKUP + name.replace(" ", ""),
            )
        cooling_until = timezone.now() + timedelta(minutes=5)
        BackupKey.objects.filter(name="Cooling").update(
            cooling_until=cooling_until, cooling_reason=KeyFault.RATE_LIMITED
        )
        BackupKey.objects.filter(name="Refused").update(cooling_reason=KeyFault.REJECTED)
        BackupKey.objects.filter(name="Moved").update(entered_for="another address")
        BackupKey.objects.filter(name="Unreadable").update(encrypted_with="lost-secret-id")
        out, err = run("check_providers")

    lines = out.splitlines()
    width = len("OpenAI Compatible")
    assert (
        f"{'OpenAI Compatible':<{width}}  verified     The provider accepted the API key. Backup "
        "keys: 2 ready, 1 cooling down, 1 refused by the provider, 2 to enter again."
    ) in lines
    # An account without backup keys reads as before.
    assert f"{'OpenAI':<{width}}  no key       No API key." in lines
    assert "BACKUPSECRET" not in out + err
    # Only the account's own key was tested.
    assert [request.headers["authorization"] for request in good.requests] == [f"Bearer {KEY}"]


def test_a_passing_check_lets_calls_try_a_refused_own_key_again():
    with serve(fake_for("openai", KEY)) as good:
        provider = provider_at("openai", good.url, api_key=KEY)
        BackupKeyFactory(provider=provider)
        Provider.objects.filter(pk=provider.pk).update(cooling_reason=KeyFault.REJECTED)

        run("check_providers")

    provider.refresh_from_db()
    assert provider.check_status == "verified"
    assert provider.cooling_reason == ""
