from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models.scoping import Grants, RestrictedQuerySet


class UserManager(BaseUserManager["User"]):
    """Django's auth needs ``User.objects`` to be a full manager, so User is the one model whose
    ``objects`` is unscoped; ``restrict`` is the same RestrictedQuerySet path as everywhere."""

    def get_queryset(self) -> RestrictedQuerySet[User]:
        return RestrictedQuerySet(self.model, using=self._db)

    def restrict(self, user: Any, permission: str) -> RestrictedQuerySet[User]:
        return self.get_queryset().restrict(user, permission)

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username or "")


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Signs in with an e-mail address; belongs to orgs through memberships."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May use the Django admin.")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()
    unscoped = UserManager()  # the same rows, under the name every other model uses

    # Set by token authentication for one request: the org the token is bound to (grants_for).
    rw_token_org: int | None = None

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email", "id"]

    def __str__(self) -> str:
        return self.email

    @classmethod
    def scope_filter(cls, grants: Grants, permission: str) -> Q:
        """Members of orgs where the caller holds ``permission`` — and always the caller."""
        from accounts.models.org import Membership

        shared = Membership.unscoped.filter(org__in=grants.orgs_with(permission))
        return Q(pk=grants.user_id) | Q(pk__in=shared.values("user_id"))

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)

    @property
    def display_name(self) -> str:
        return self.full_name or self.email
