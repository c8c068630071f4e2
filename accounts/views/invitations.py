"""Invitation pages for the invitee: the e-mailed link, and the list of open invitations."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from accounts.actor import Actor, client_ip
from accounts.errors import ApplicationError, Refusal
from accounts.forms import AcceptInvitationForm, add_service_errors
from accounts.models import Invitation, User
from accounts.permissions import AUTHENTICATED, PUBLIC
from accounts.routes import declare
from accounts.selectors import my_invitations
from accounts.services import invitations
from accounts.views.base import PageRequest, current_user

_BACKEND = "django.contrib.auth.backends.ModelBackend"


@declare(PUBLIC)
@require_http_methods(["GET", "POST"])
def invitation_accept(request: PageRequest, secret: str) -> HttpResponse:
    """The e-mailed link. An address with an account must be signed in as that account; a new
    address chooses its password here and is signed in."""
    invitation = invitations.invitation_for_secret(secret)
    context: dict[str, object] = {"invitation": invitation}
    if invitation is None or not invitation.is_open:
        return render(request, "accounts/invitations/invalid.html", context, status=404)
    has_account = User.objects.filter(email__iexact=invitation.email).exists()
    signed_in = request.user.is_authenticated
    if has_account:
        if not signed_in:
            login_url = reverse("account_login") + "?" + urlencode({"next": request.path})
            return render(
                request, "accounts/invitations/sign_in.html", context | {"login_url": login_url}
            )
        if current_user(request).email.lower() != invitation.email.lower():
            return render(request, "accounts/invitations/wrong_account.html", context, status=403)
        if request.method == "POST":
            return _respond(request, invitation, request.POST.get("answer", ""))
        return render(request, "accounts/invitations/answer.html", context)
    if signed_in:
        return render(request, "accounts/invitations/wrong_account.html", context, status=403)
    form = AcceptInvitationForm(request.POST or None, initial={"full_name": invitation.full_name})
    if request.method == "POST" and form.is_valid():
        try:
            user = invitations.invitation_accept_new_account(
                invitation=invitation,
                password=form.cleaned_data["password1"],
                full_name=form.cleaned_data["full_name"],
                ip=client_ip(request),
            )
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            login(request, user, backend=_BACKEND)
            request.session["org_id"] = invitation.org_id
            messages.success(request, f"Welcome to {invitation.org.name}.")
            return redirect("dashboard")
    return render(request, "accounts/invitations/new_account.html", context | {"form": form})


def _respond(request: PageRequest, invitation: Invitation, answer: str) -> HttpResponse:
    actor = Actor.for_request(request)
    try:
        if answer == "accept":
            invitations.invitation_accept(actor=actor, invitation=invitation)
            request.session["org_id"] = invitation.org_id
            request.session["site_id"] = None
            messages.success(
                request, f"You joined {invitation.org.name} as {invitation.role.name}."
            )
        elif answer == "decline":
            invitations.invitation_decline(actor=actor, invitation=invitation)
            messages.success(request, f"Declined the invitation to {invitation.org.name}.")
        else:
            messages.error(request, "Choose accept or decline.")
            return redirect("invitations")
    except Refusal as exc:
        messages.error(request, exc.message)
    return redirect("dashboard")


@declare(AUTHENTICATED)
@require_http_methods(["GET"])
def invitation_list(request: PageRequest) -> HttpResponse:
    return render(
        request,
        "accounts/invitations/list.html",
        {"invitations": list(my_invitations(current_user(request)))},
    )


@declare(AUTHENTICATED)
@require_POST
def invitation_answer(request: PageRequest, pk: int) -> HttpResponse:
    invitation = get_object_or_404(my_invitations(current_user(request)), pk=pk)
    return _respond(request, invitation, request.POST.get("answer", ""))
