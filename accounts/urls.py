from django.urls import path

from accounts.views import base, invitations, members, personal, roles, sites

urlpatterns = [
    path("", members.dashboard, name="dashboard"),
    path("switch/", base.switch_scope, name="switch-scope"),
    path("users/", members.users, name="users"),
    path("users/invite/", members.member_invite, name="users-invite"),
    path("users/<int:pk>/role/", members.member_role, name="users-role"),
    path("users/<int:pk>/remove/", members.member_remove, name="users-remove"),
    path("users/<int:pk>/site-roles/", members.member_site_role, name="users-site-role"),
    path(
        "users/site-roles/<int:pk>/remove/",
        members.member_site_role_remove,
        name="users-site-role-remove",
    ),
    path(
        "users/invitations/<int:pk>/resend/",
        members.invitation_resend,
        name="users-invitation-resend",
    ),
    path(
        "users/invitations/<int:pk>/revoke/",
        members.invitation_revoke,
        name="users-invitation-revoke",
    ),
    path("invitations/", invitations.invitation_list, name="invitations"),
    path("invitations/<int:pk>/answer/", invitations.invitation_answer, name="invitation-answer"),
    path(
        "invitations/accept/<str:secret>/",
        invitations.invitation_accept,
        name="invitation-accept",
    ),
    path("sites/", sites.sites, name="sites"),
    path("sites/create/", sites.site_create, name="site-create"),
    path("sites/<int:pk>/", sites.site_update, name="site-update"),
    path("sites/<int:pk>/delete/", sites.site_delete, name="site-delete"),
    path("roles/", roles.role_matrix, name="roles"),
    path("roles/create/", roles.role_create, name="role-create"),
    path("roles/<int:pk>/", roles.role_detail, name="role-update"),
    path("roles/<int:pk>/delete/", roles.role_delete, name="role-delete"),
    path("tokens/", personal.token_list, name="tokens"),
    path("tokens/create/", personal.token_create, name="token-create"),
    path("tokens/<int:pk>/revoke/", personal.token_revoke, name="token-revoke"),
    path("security/", personal.security_overview, name="security"),
    path("security/sessions/<int:pk>/revoke/", personal.session_revoke, name="session-revoke"),
    path(
        "security/sessions/revoke-others/",
        personal.sessions_revoke_others,
        name="sessions-revoke-others",
    ),
    path("activity/", personal.activity, name="activity"),
]
