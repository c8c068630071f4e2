from rest_framework.routers import DefaultRouter

from accounts.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("orgs", views.OrganizationViewSet, basename="org")
router.register("sites", views.SiteViewSet, basename="site")
router.register("users", views.UserViewSet, basename="user")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("my-invitations", views.MyInvitationViewSet, basename="my-invitation")
router.register("site-roles", views.SiteRoleViewSet, basename="site-role")
router.register("roles", views.RoleViewSet, basename="role")
router.register("permissions", views.PermissionCatalogViewSet, basename="permission")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("activity", views.ActivityViewSet, basename="activity")
router.register("me", views.MeViewSet, basename="me")

urlpatterns = router.urls
