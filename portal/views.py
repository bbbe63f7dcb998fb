"""The landing page."""

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.web import StaffRequest


@require_GET
def home(request: StaffRequest) -> HttpResponse:
    """Show what the signed-in person can do."""
    return render(request, "home.html")
