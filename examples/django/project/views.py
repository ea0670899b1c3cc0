from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1  # sets `sessionid`
    response = render(request, "home.html", {"visits": request.session["visits"]})
    # Set regardless of consent: ConsentMiddleware drops it until analytics is granted.
    response.set_cookie("_ga", "GA1.1.123456789.1700000000", max_age=63072000)
    return response
