from django.urls import path

from portal.staff import views

app_name = "staff"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("two-factor/", views.two_factor_verify, name="two-factor"),
    path("two-factor/setup/", views.two_factor_setup, name="two-factor-setup"),
    path("", views.staff_list, name="list"),
    path("create/", views.staff_create, name="create"),
    path("<int:pk>/roles/", views.staff_roles, name="roles"),
    path("<int:pk>/deactivate/", views.staff_deactivate, name="deactivate"),
    path("<int:pk>/two-factor/reset/", views.two_factor_reset, name="two-factor-reset"),
    path("password/", views.password_change, name="password"),
    path("two-factor/requirement/", views.two_factor_requirement, name="two-factor-requirement"),
]
