"""Carrier detection from tracking numbers, declared-carrier precedence and tracking URLs."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from notifier.core.carriers import (
    Carrier,
    carrier_name,
    detect,
    normalise_carrier_name,
    resolve,
    tracking_url,
)

# The shared test data sits beside the repository, never inside it: the
# project does not ship it, so its absence skips the tests that need it.
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "tracking_numbers"
MIN_RATE = 0.95

UPS_EXAMPLE = "1Z999AA10123456784"
UPS_URL = "https://www.ups.com/track?tracknum="
USPS_URL = "https://tools.usps.com/go/TrackConfirmAction?tLabels="
FEDEX_URL = "https://www.fedex.com/fedextrack/?trknbr="
DHL_URL = "https://www.dhl.com/en/express/tracking.html?AWB="

# Valid numbers of a smaller carrier that another carrier's format and check
# digit accept too: detection prefers the bigger carrier, and a declared
# carrier settles it (see test_declared_carrier_settles_a_collision).
COLLISIONS = {
    "287809468872": "FedEx",  # Purolator (12), also a FedEx Express check digit
    "320610804900": "FedEx",  # Purolator (12), also a FedEx Express check digit
    "JFV247545960": "DHL",  # Purolator alpha, also a DHL Express piece ID
    "78045768393": "DHL",  # Old Dominion, also a DHL Express mod-7 check digit
}


def _normalised(number: str) -> str:
    return "".join(number.split()).upper()


def _test_numbers(filename: str) -> tuple[list[str], list[str]]:
    """The file's valid numbers, and its invalid ones that no entry of it lists as valid."""
    path = DATA_DIR / filename
    if not path.is_file():
        pytest.skip(
            f"shared test data not present at ../shared/testdata/tracking_numbers; "
            f"{filename} is needed to measure detection against real numbers"
        )
    entries = json.loads(path.read_text(encoding="utf-8"))["tracking_numbers"]
    valid = [n for e in entries for n in e["test_numbers"].get("valid", [])]
    # An entry's invalid example can be another entry's valid one (Purolator's
    # 12-digit number is "invalid" as the alpha form): that is a hit, not a miss.
    valid_set = {_normalised(n) for n in valid}
    invalid = [
        n
        for e in entries
        for n in e["test_numbers"].get("invalid", [])
        if _normalised(n) not in valid_set
    ]
    return valid, invalid


def _name(number: str) -> str | None:
    carrier = detect(number)
    return carrier.name if carrier else None


MAJOR_CARRIERS = [
    ("usps.json", "USPS"),
    ("ups.json", "UPS"),
    ("fedex.json", "FedEx"),
    ("dhl.json", "DHL"),
]

OTHER_CARRIERS = [
    ("ontrac.json", "OnTrac"),
    ("canadapost.json", "Canada Post"),
    ("purolator.json", "Purolator"),
    ("canpar.json", "Canpar"),
    ("dpd.json", "DPD"),
    ("speedee.json", "Spee-Dee"),
    ("gofo.json", "GOFO Express"),
    ("landmark.json", "Landmark Global"),
    ("old_dominion.json", "Old Dominion"),
    ("yodel.json", "Yodel"),
    ("yunexpress.json", "YunExpress"),
    ("lasership.json", "OnTrac"),  # LaserShip is part of OnTrac since 2024
]


@pytest.mark.parametrize(("filename", "carrier"), MAJOR_CARRIERS)
def test_recognises_valid_numbers(filename: str, carrier: str) -> None:
    """At least 95% of a major carrier's valid test numbers are detected as that carrier."""
    valid, _ = _test_numbers(filename)
    missed = [n for n in valid if _name(n) != carrier]
    rate = 1 - len(missed) / len(valid)
    assert rate >= MIN_RATE, (
        f"{carrier}: recognised {len(valid) - len(missed)}/{len(valid)} = {rate:.1%}; "
        f"missed {missed}"
    )


@pytest.mark.parametrize(("filename", "carrier"), MAJOR_CARRIERS)
def test_rejects_invalid_numbers(filename: str, carrier: str) -> None:
    """At least 95% of a major carrier's invalid test numbers are not detected as that carrier."""
    _, invalid = _test_numbers(filename)
    accepted = [n for n in invalid if _name(n) == carrier]
    rate = 1 - len(accepted) / len(invalid)
    assert rate >= MIN_RATE, (
        f"{carrier}: rejected {len(invalid) - len(accepted)}/{len(invalid)} = {rate:.1%}; "
        f"wrongly accepted {accepted}"
    )


@pytest.mark.parametrize(("filename", "carrier"), OTHER_CARRIERS)
def test_other_carriers_match_their_test_data(filename: str, carrier: str) -> None:
    """Other carriers' valid numbers are theirs unless a known collision, and invalid ones never."""
    valid, invalid = _test_numbers(filename)
    wrong = {n: got for n in valid if (got := _name(n)) != COLLISIONS.get(_normalised(n), carrier)}
    accepted = [n for n in invalid if _name(n) == carrier]
    assert not wrong, f"{carrier}: valid numbers detected otherwise: {wrong}"
    assert not accepted, f"{carrier}: invalid numbers accepted: {accepted}"


def test_s10_numbers_from_the_us_are_usps() -> None:
    """UPU S10 numbers ending in US are USPS; other countries' and bad check digits are not."""
    valid, invalid = _test_numbers("s10.json")
    for number in valid:
        expected = "USPS" if _normalised(number).endswith("US") else None
        assert _name(number) == expected, number
    assert all(_name(n) != "USPS" for n in invalid), invalid


def test_whitespace_anywhere_is_tolerated() -> None:
    """Spaces, tabs, newlines and lower case are normalised away before detection."""
    expected = Carrier("UPS", UPS_EXAMPLE, UPS_URL + UPS_EXAMPLE)
    assert detect("1Z 999 AA1 01 2345 6784") == expected
    assert detect(" 1z999aa1\t0123\n456784 ") == expected
    assert detect("1Z\u00a0999AA10123456784") == expected


@pytest.mark.parametrize(
    ("number", "carrier"),
    [
        # 1Z payload 999AA1012345678, letters A=2, weights 1,2: sum 96 -> check 4.
        ("1Z999AA10123456784", "UPS"),
        ("1Z999AA10123456785", None),
        # IMpb 94001000..0: 9*3 + 4*1 + 1*3 = 34 -> check 6.
        ("9400100000000000000006", "USPS"),
        ("9400100000000000000007", None),
        # 20-digit legacy 1000..0: 1*3 -> check 7; read with its "91" in front,
        # 9*3 + 1*1 + 1*3 = 31 -> check 9. Either is accepted, nothing else.
        ("10000000000000000007", "USPS"),
        ("10000000000000000009", "USPS"),
        ("10000000000000000008", None),
        # S10 12345678, weights 8,6,4,2,3,5,9,7: 204 % 11 = 6, 11 - 6 -> check 5.
        ("RB123456785US", "USPS"),
        ("RB123456786US", None),
        # S10 00010003: 2 + 21 = 23, remainder 1 and 11 - 1 = 10 -> check 0;
        # 00100001: 4 + 7 = 11, remainder 0 and 11 - 0 = 11 -> check 5.
        ("RR000100030US", "USPS"),
        ("RR000100031US", None),
        ("RR001000015US", "USPS"),
        ("RR001000016US", None),
        # FedEx Express 12345678901, weights 3,1,7: 178 % 11 % 10 -> check 2.
        ("123456789012", "FedEx"),
        ("123456789013", None),
        # DHL Express: 123456789 % 7 -> check 1.
        ("1234567891", "DHL"),
        ("1234567890", None),
    ],
)
def test_hand_computed_check_digits(number: str, carrier: str | None) -> None:
    """Hand-computed check digits are accepted and the next digit up is rejected."""
    assert _name(number) == carrier


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "N/A",
        "TBD",
        "see invoice",
        "not-a-tracking-number",
        "000000000000",
        "1Z1111111111111111",
        "12345",
        "1234567890123456789012345678901234567890",
        "ZZ!!@@##$$%%^^&&**",
    ],
)
def test_garbage_is_not_detected(garbage: str) -> None:
    """Text that is no carrier's number, placeholders included, detects as None."""
    assert detect(garbage) is None


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("fedex", "FedEx"),
        ("FEDEX", "FedEx"),
        ("FedEx Ground", "FedEx"),
        ("Federal Express", "FedEx"),
        ("fedex_ground", "FedEx"),
        ("usps", "USPS"),
        ("US Postal Service", "USPS"),
        ("U.S. Postal Service", "USPS"),
        ("United States Postal Service", "USPS"),
        ("USPS First Class", "USPS"),
        ("ups", "UPS"),
        ("UPS Ground", "UPS"),
        ("dhl", "DHL"),
        ("DHL Express", "DHL"),
        ("DHL eCommerce", "DHL"),
        ("OnTrac", "OnTrac"),
        ("Canada Post", "Canada Post"),
        ("Acme Couriers", None),
        ("Upsilon Freight", None),
        ("", None),
    ],
)
def test_normalise_carrier_name(declared: str, expected: str | None) -> None:
    """Declared carrier spellings map to one display name, and unknown ones to None."""
    assert normalise_carrier_name(declared) == expected


def test_declared_carrier_wins_over_detection() -> None:
    """A known declared carrier is used, with its own URL, even for another carrier's number."""
    assert resolve(UPS_EXAMPLE, "fedex") == Carrier("FedEx", UPS_EXAMPLE, FEDEX_URL + UPS_EXAMPLE)
    assert resolve("1z 999aa1 0123456784", "UPS Ground") == Carrier(
        "UPS", UPS_EXAMPLE, UPS_URL + UPS_EXAMPLE
    )


def test_declared_carrier_settles_a_collision() -> None:
    """A number two carriers' check digits accept goes to the declared one."""
    assert _name("287809468872") == "FedEx"
    assert carrier_name("287809468872", "Purolator") == "Purolator"


def test_smartpost_numbers_read_as_usps_unless_declared() -> None:
    """A 92-prefixed SmartPost/Ground Economy IMpb number is USPS unless FedEx is declared."""
    number = "9261290113185417468510"
    assert _name(number) == "USPS"
    assert tracking_url(number, "FedEx SmartPost") == FEDEX_URL + number


def test_unknown_declared_carrier_falls_back_to_detection() -> None:
    """An unknown declared carrier is ignored for detection but kept as the display text."""
    assert resolve(UPS_EXAMPLE, "Acme Couriers") == detect(UPS_EXAMPLE)
    assert carrier_name(UPS_EXAMPLE, "Acme Couriers") == "UPS"
    assert carrier_name("not-a-number", "Acme Couriers") == "Acme Couriers"
    assert tracking_url("not-a-number", "Acme Couriers") is None


def test_no_number_resolves_to_nothing() -> None:
    """Without a number there is no carrier or URL, but the declared text is still the name."""
    assert resolve(None, "UPS") is None
    assert resolve("  ", "UPS") is None
    assert tracking_url(None) is None
    assert carrier_name(None) is None
    assert carrier_name(None, "UPS Ground") == "UPS Ground"
    assert carrier_name("not-a-number") is None


@pytest.mark.parametrize(
    ("number", "prefix"),
    [
        (UPS_EXAMPLE, UPS_URL),
        ("9400100000000000000006", USPS_URL),
        ("123456789012", FEDEX_URL),
        ("1234567891", DHL_URL),
    ],
)
def test_tracking_url_is_the_carriers_page_for_the_number(number: str, prefix: str) -> None:
    """Each major carrier's URL is its public tracking page ending in the number."""
    assert tracking_url(number) == prefix + number


def test_tracking_url_quotes_the_number() -> None:
    """Characters with a meaning in URLs are percent-encoded in the declared carrier's URL."""
    url = tracking_url("ab#12/3&x?", "USPS")
    assert url == USPS_URL + quote("AB#12/3&X?", safe="")
    assert url.endswith("AB%2312%2F3%26X%3F")


def test_fedex_astra_barcode_tracks_its_embedded_number() -> None:
    """An ASTRA barcode keeps its number but links to the Express number at digits 17-28."""
    barcode = "32971514560102447849175802862014"
    assert detect(barcode) == Carrier("FedEx", barcode, FEDEX_URL + "784917580286")


CARRIER_HOSTS = {"USPS": "tools.usps.com", "UPS": "www.ups.com", "FedEx": "www.fedex.com"}
CARRIER_HOSTS["DHL"] = "www.dhl.com"


@pytest.mark.parametrize(("filename", "carrier"), MAJOR_CARRIERS)
def test_links_open_the_carriers_page_for_that_number(filename: str, carrier: str) -> None:
    """Every valid test number links to its carrier's HTTPS tracking page, carrying the number."""
    valid, _ = _test_numbers(filename)
    for number in valid:
        url = tracking_url(number)
        assert url is not None, number
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname) == ("https", CARRIER_HOSTS[carrier]), url
        (tracked,) = [value for _, value in parse_qsl(parts.query) if value in _normalised(number)]
        # Long barcodes may link the embedded number the carrier's site accepts.
        assert len(tracked) >= 10, (number, url)


def test_amazon_logistics_numbers() -> None:
    """TBA/TBC/TBM numbers are Amazon Logistics; its invalid examples are not."""
    path = DATA_DIR / "amazon.json"
    if not path.is_file():
        pytest.skip("shared test data not present at ../shared/testdata/tracking_numbers")
    entries = json.loads(path.read_text(encoding="utf-8"))["tracking_numbers"]
    (logistics,) = [e for e in entries if e["id"] == "amazon_logistics"]
    assert all(_name(n) == "Amazon Logistics" for n in logistics["test_numbers"]["valid"])
    assert all(_name(n) != "Amazon Logistics" for n in logistics["test_numbers"]["invalid"])
    assert tracking_url("TBA 5028 8727 4000") == "https://track.amazon.com/tracking/TBA502887274000"


def test_lasership_numbers_track_on_ontrac() -> None:
    """A former LaserShip number, or a record declaring LaserShip, links to OnTrac's page."""
    assert tracking_url("1LS7119013618127-1") == (
        "https://www.ontrac.com/tracking/?number=1LS7119013618127-1"
    )
    assert carrier_name("LX17635036", "LaserShip") == "OnTrac"
