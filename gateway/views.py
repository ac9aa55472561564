"""The developers' page of their own access tokens, reached from /agents/."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from gateway.forms import TokenForm
from gateway.models import PersonalAccessToken
from gateway.tokens import token_mint, token_revoke

# The APIs' base URLs, as the tools' environment variables take them.
OPENAI_BASE_PATH = "/gateway/openai/v1"
ANTHROPIC_BASE_PATH = "/gateway/anthropic"


# no-store: the answer to a create shows the secret, which no cache may keep.
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
@sensitive_variables()  # the secret is in several of them (the context, the lines)
def tokens(request: HttpRequest) -> HttpResponse:
    """List, and create: the new secret is in this answer only, never in the session."""
    form = TokenForm(request.POST if request.method == "POST" else None)
    secret = None
    if form.is_valid():
        try:
            _, secret = token_mint(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            form = TokenForm()
    context = {
        "form": form,
        "tokens": PersonalAccessToken.objects.filter(user=request.user),
        "env_lines": secret and env_lines(request, secret),
    }
    return render(request, "gateway/tokens.html", context)


@sensitive_variables()
def env_lines(request: HttpRequest, secret: str) -> str:
    """What a developer pastes into their shell: both APIs on this server's own address."""
    openai = request.build_absolute_uri(OPENAI_BASE_PATH)
    anthropic = request.build_absolute_uri(ANTHROPIC_BASE_PATH)
    return (
        f"OPENAI_BASE_URL={openai}\nOPENAI_API_KEY={secret}\n"
        f"ANTHROPIC_BASE_URL={anthropic}\nANTHROPIC_AUTH_TOKEN={secret}"
    )


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    # Another developer's token does not exist for this one.
    token = get_object_or_404(PersonalAccessToken, pk=pk, user=request.user)
    token_revoke(token=token)
    return redirect("tokens")
