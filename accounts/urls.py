from django.urls import path

from accounts.views import base, members, personal, roles

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
    path("roles/", roles.role_matrix, name="roles"),
    path("roles/create/", roles.role_create, name="role-create"),
    path("roles/<int:pk>/", roles.role_update, name="role-update"),
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
