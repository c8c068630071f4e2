from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("switch/", views.switch_scope, name="switch-scope"),
    path("users/", views.users, name="users"),
    path("users/invite/", views.member_invite, name="users-invite"),
    path("users/<int:pk>/role/", views.member_role, name="users-role"),
    path("users/<int:pk>/remove/", views.member_remove, name="users-remove"),
    path("users/<int:pk>/site-roles/", views.member_site_role, name="users-site-role"),
    path(
        "users/site-roles/<int:pk>/remove/",
        views.member_site_role_remove,
        name="users-site-role-remove",
    ),
    path("roles/", views.role_matrix, name="roles"),
    path("roles/create/", views.role_create, name="role-create"),
    path("roles/<int:pk>/", views.role_update, name="role-update"),
    path("roles/<int:pk>/delete/", views.role_delete, name="role-delete"),
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/create/", views.token_create, name="token-create"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("security/", views.security_overview, name="security"),
    path("security/sessions/<int:pk>/revoke/", views.session_revoke, name="session-revoke"),
    path(
        "security/sessions/revoke-others/",
        views.sessions_revoke_others,
        name="sessions-revoke-others",
    ),
    path("activity/", views.activity, name="activity"),
]
