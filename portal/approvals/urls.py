from django.urls import path

from portal.approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("count/", views.waiting_count, name="count"),
    path("approve/", views.approve_selected, name="approve-selected"),
    path("policy/", views.policy, name="policy"),
    path("policy/request/", views.policy_request, name="policy-request"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/vote/", views.vote, name="vote"),
    path("<int:pk>/withdraw/", views.withdraw, name="withdraw"),
    path("<int:pk>/execute/", views.execute, name="execute"),
    path("<int:pk>/reconcile/", views.reconcile, name="reconcile"),
    path("<int:pk>/reviewed/", views.reviewed, name="reviewed"),
    path("<int:pk>/evidence/", views.evidence, name="evidence"),
]
