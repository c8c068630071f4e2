from accounts.models.activity import ActivityEvent, ActivityResult, ActorType
from accounts.models.invitations import INVITATION_LIFETIME, Invitation, InvitationStatus
from accounts.models.org import Membership, Organization, Role, Site, SiteRoleAssignment
from accounts.models.scoping import (
    Grants,
    RestrictedQuerySet,
    ScopedModel,
    forget_grants,
    grants_for,
)
from accounts.models.security import (
    LoginEvent,
    LoginLockout,
    LoginMethod,
    LoginResult,
    TrackedSession,
)
from accounts.models.sso import SsoIdentity, SsoRoleMapping, SsoSeatLimit
from accounts.models.tokens import ApiToken
from accounts.models.user import User

__all__ = [
    "INVITATION_LIFETIME",
    "ActivityEvent",
    "ActivityResult",
    "ActorType",
    "ApiToken",
    "Grants",
    "Invitation",
    "InvitationStatus",
    "LoginEvent",
    "LoginLockout",
    "LoginMethod",
    "LoginResult",
    "Membership",
    "Organization",
    "RestrictedQuerySet",
    "Role",
    "ScopedModel",
    "Site",
    "SiteRoleAssignment",
    "SsoIdentity",
    "SsoRoleMapping",
    "SsoSeatLimit",
    "TrackedSession",
    "User",
    "forget_grants",
    "grants_for",
]
