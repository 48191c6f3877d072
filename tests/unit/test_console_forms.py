"""The console's suppress and unsuppress forms, read by one function for both."""

from __future__ import annotations

from notifier.http.console.ledger import AddressForm, address_form
from notifier.http.console.render import notice_path

KEY = "tracking_number_assigned:fulfillment:F/1#resend-1"


def test_from_a_notice_page_it_goes_back_to_that_page() -> None:
    """The address is trimmed; the key is kept for the notice's timeline and its page."""
    form = address_form({"address": "  sam@example.com ", "key": KEY})
    assert form == AddressForm("sam@example.com", KEY, notice_path(KEY))
    assert form.back == "/console/notices/tracking_number_assigned%3Afulfillment%3AF%2F1%23resend-1"


def test_from_the_suppression_list_it_goes_back_to_the_list() -> None:
    """No key (or an empty one): no notice, and back to the list."""
    for posted in ({"address": "sam@example.com"}, {"address": "sam@example.com", "key": ""}):
        assert address_form(posted) == AddressForm("sam@example.com", None, "/console/suppressions")


def test_a_given_back_wins_and_a_missing_address_is_empty() -> None:
    """`back` as posted (the redirect keeps it to /console paths); no address: '' to refuse."""
    form = address_form({"key": KEY, "back": "/console/suppressions"})
    assert form == AddressForm("", KEY, "/console/suppressions")
