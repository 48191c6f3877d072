"""Which carrier a tracking number belongs to, and where a customer can track it.

A number is recognised from its shape plus the carrier's own check digit, so a
mistyped digit is rejected instead of being sent to the wrong carrier's page. A
carrier the record declares wins over detection: the fulfillment house knows
who it handed the parcel to, while several carriers share number shapes.

Format facts follow the public `jkeen/tracking_number_data` definitions; the
package carries its own copy of the few it needs and never reads that data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import quote

__all__ = [
    "Carrier",
    "Identification",
    "carrier_name",
    "detect",
    "identify",
    "normalise_carrier_name",
    "resolve",
    "tracking_url",
]


@dataclass(frozen=True, slots=True)
class Carrier:
    """A tracking number attributed to a carrier, with the page to track it on."""

    name: str
    number: str
    tracking_url: str


USPS: Final = "USPS"
UPS: Final = "UPS"
FEDEX: Final = "FedEx"
DHL: Final = "DHL"
ONTRAC: Final = "OnTrac"
CANADA_POST: Final = "Canada Post"
PUROLATOR: Final = "Purolator"
CANPAR: Final = "Canpar"
DPD: Final = "DPD"
SPEE_DEE: Final = "Spee-Dee"
GOFO: Final = "GOFO Express"
LANDMARK: Final = "Landmark Global"
OLD_DOMINION: Final = "Old Dominion"
YODEL: Final = "Yodel"
YUNEXPRESS: Final = "YunExpress"
AMAZON: Final = "Amazon Logistics"

# Every name detection or normalisation can return must have a page here, so a
# Carrier always carries a usable URL.
_URL_TEMPLATES: Final[dict[str, str]] = {
    USPS: "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    UPS: "https://www.ups.com/track?tracknum={}",
    FEDEX: "https://www.fedex.com/fedextrack/?trknbr={}",
    DHL: "https://www.dhl.com/en/express/tracking.html?AWB={}",
    ONTRAC: "https://www.ontrac.com/tracking/?number={}",
    CANADA_POST: "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={}",
    PUROLATOR: "https://www.purolator.com/en/shipping/tracker?searchValue={}",
    CANPAR: "https://www.canpar.com/en/track/tracking.jsp?reference={}&locale=en",
    DPD: "https://www.dpdgroup.com/nl/mydpd/my-parcels/track?lang=en&parcelNumber={}",
    SPEE_DEE: "https://www.speedeedelivery.com/track/?tracking={}",
    GOFO: "https://www.gofoexpress.com/tracking.html?searchID={}",
    LANDMARK: "https://track.landmarkglobal.com/?search={}",
    OLD_DOMINION: "https://www.odfl.com/us/en/tools/trace-track-ltl-freight/trace.html?proNumbers={}",
    YODEL: "https://www.yodel.co.uk/tracking/{}",
    YUNEXPRESS: "https://www.yuntrack.com/parcelTracking?id={}",
    AMAZON: "https://track.amazon.com/tracking/{}",
}

# Declared names are matched on their leading words with punctuation and case
# dropped, so "FEDEX_GROUND", "Fed Ex Ground" and "FedEx SmartPost" all land on
# FedEx; keys are those leading words run together.
_ALIASES: Final[dict[str, str]] = {
    "usps": USPS,
    "uspostalservice": USPS,
    "unitedstatespostalservice": USPS,
    "unitedstatespostal": USPS,
    "usmail": USPS,
    "ups": UPS,
    "unitedparcelservice": UPS,
    "fedex": FEDEX,
    "federalexpress": FEDEX,
    "dhl": DHL,
    "ontrac": ONTRAC,
    "canadapost": CANADA_POST,
    "postescanada": CANADA_POST,
    "purolator": PUROLATOR,
    "canpar": CANPAR,
    "dpd": DPD,
    "speedee": SPEE_DEE,
    "gofo": GOFO,
    "landmarkglobal": LANDMARK,
    "olddominion": OLD_DOMINION,
    "odfl": OLD_DOMINION,
    "yodel": YODEL,
    "yunexpress": YUNEXPRESS,
    # LaserShip merged into OnTrac (2024); its numbers track on OnTrac's page.
    "lasership": ONTRAC,
    "amazon": AMAZON,
    "amzl": AMAZON,
}
_NAME_WORD: Final = re.compile(r"[^\W_]+")


# --- check digits ----------------------------------------------------------------


def _digits(text: str) -> list[int]:
    return [int(c) for c in text]


def _weighted_sum(values: Iterable[int], weights: Sequence[int]) -> int:
    return sum(v * weights[i % len(weights)] for i, v in enumerate(values))


def _mod10(values: Sequence[int], weights: Sequence[int]) -> int:
    return -_weighted_sum(values, weights) % 10


def _gs1_mod10(payload: str) -> int:
    # GS1 / USPS / FedEx Ground / Canada Post all weight 3 on the digit next to
    # the check digit, so counting from the right makes every length agree.
    return _mod10(_digits(payload[::-1]), (3, 1))


def _ups_value(char: str) -> int:
    # UPS folds letters onto digits: A=2, B=3, ... wrapping every ten.
    return int(char) if char.isdigit() else (ord(char) - 63) % 10


def _ups_mod10(payload: str) -> int:
    return _mod10([_ups_value(c) for c in payload], (1, 2))


def _ontrac_mod10(payload: str) -> int:
    return _mod10(_digits(payload), (1, 2))


def _fedex_mod11(payload: str) -> int:
    # FedEx Express weights 1,3,7 from the right; a remainder of 10 reads as 0.
    return _weighted_sum(_digits(payload[::-1]), (1, 3, 7)) % 11 % 10


def _luhn(payload: str) -> int:
    doubled = (d * 2 if i % 2 == 0 else d for i, d in enumerate(_digits(payload[::-1])))
    return -sum(d - 9 if d > 9 else d for d in doubled) % 10


def _s10(payload: str) -> int:
    # UPU S10: 11 minus the remainder, where 10 becomes 0 and 11 becomes 5.
    check = 11 - _weighted_sum(_digits(payload), (8, 6, 4, 2, 3, 5, 9, 7)) % 11
    return {10: 0, 11: 5}.get(check, check)


_ISO7064_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _iso7064_mod37_36(payload: str) -> str:
    product = 36
    for char in payload:
        total = (product + _ISO7064_ALPHABET.index(char)) % 36 or 36
        product = total * 2 % 37
    return _ISO7064_ALPHABET[(37 - product) % 36]


# --- formats ---------------------------------------------------------------------

_Validator: TypeAlias = Callable[[re.Match[str]], bool]


def _check_digit(algorithm: Callable[[str], int], prefix: str = "") -> _Validator:
    """A validator comparing group `check` with `algorithm(prefix + group payload)`."""

    def valid(match: re.Match[str]) -> bool:
        return algorithm(prefix + match["payload"]) == int(match["check"])

    return valid


def _usps_legacy_20(match: re.Match[str]) -> bool:
    # Twenty-digit Delivery Confirmation numbers are printed without their "91"
    # application identifier, and issuers differ on whether the check digit
    # covered it, so either reading is genuine.
    payload, check = match["payload"], int(match["check"])
    return check in (_gs1_mod10(payload), _gs1_mod10("91" + payload))


def _dhl_mod7(match: re.Match[str]) -> bool:
    return int(match["payload"]) % 7 == int(match["check"])


def _dpd(match: re.Match[str]) -> bool:
    return _iso7064_mod37_36(match["payload"]) == match["check"]


def _unchecked(match: re.Match[str]) -> bool:
    # The carrier publishes no check digit: the shape is all there is to go on.
    return True


@dataclass(frozen=True, slots=True)
class _Format:
    carrier: str
    pattern: re.Pattern[str]
    valid: _Validator
    # Group holding the number the carrier's site accepts, when the printed
    # barcode wraps it in other fields the site does not understand.
    trackable_group: str | None = None


def _formats(carrier: str, valid: _Validator, *patterns: str) -> list[_Format]:
    return [_Format(carrier, re.compile(p), valid) for p in patterns]


def _checked(payload: str, before: str = "", after: str = "", check: str = r"\d") -> str:
    """A pattern whose `payload` group the check digit covers, with uncovered parts around."""
    return f"{before}(?P<payload>{payload})(?P<check>{check}){after}"


def _usps_routed(body: str) -> tuple[str, ...]:
    # A "420" + ZIP or ZIP+4 routing prefix precedes the number on many labels.
    # Separate patterns rather than an optional group, so a checksum failure on
    # the ZIP reading still gets the ZIP+4 reading tried.
    return (body, r"420\d{5}" + body, r"420\d{9}" + body)


# IMpb: application identifier 92-95, 3-digit service type, mailer ID (9 digits
# when it starts with 9, else 6; 92 only takes the long one, 93 the short), a
# serial filling the barcode to 22 or 26 digits (30 for 94 with a long ID).
_IMPB_22_26: Final = r"(?:92\d{3}9|93\d{3}[0-8]|9[45]\d{4})(?:\d{15}|\d{19})"
_IMPB_30: Final = r"94\d{3}9\d{23}"

# First match wins, and shapes do overlap (a 12-digit number can pass both the
# FedEx and the Purolator check digit), so the carriers a US merchant ships with
# most come first; a declared carrier overrides the choice. FedEx SmartPost /
# Ground Economy numbers are USPS IMpb numbers (USPS delivers them), so they
# read as USPS.
_FORMATS: Final[tuple[_Format, ...]] = (
    *_formats(
        UPS,
        _check_digit(_ups_mod10),
        _checked(r"[0-9A-Z]{15}", before="1Z"),
        _checked(r"\d{9}", before="[AHJKTV]"),  # waybill
    ),
    *_formats(
        USPS,
        _check_digit(_gs1_mod10),
        *_usps_routed(_checked(f"{_IMPB_22_26}|{_IMPB_30}")),
        *_usps_routed(_checked(r"91\d{19}")),  # legacy, with its application identifier
    ),
    *_formats(USPS, _usps_legacy_20, *_usps_routed(_checked(r"\d{19}"))),
    # UPU S10 international numbers, by the issuing country's post.
    *_formats(USPS, _check_digit(_s10), _checked(r"\d{8}", before="[A-Z]{2}", after="US")),
    *_formats(CANADA_POST, _check_digit(_s10), _checked(r"\d{8}", before="[A-Z]{2}", after="CA")),
    *_formats(
        FEDEX,
        _check_digit(_fedex_mod11),
        _checked(r"\d{11}"),  # Express
        _checked(r"\d{13}", before=r"[0-8]\d{19}"),  # Express 34-digit barcode
        _checked(r"\d{13}", before=r"96\d{18}"),  # Ground 34-digit barcode (GSN)
    ),
    _Format(
        FEDEX,
        # The legacy ASTRA barcode: digits 17-28 are the Express tracking number.
        re.compile(r"3\d{15}(?P<tracking>" + _checked(r"\d{11}") + r")\d{4}"),
        _check_digit(_fedex_mod11),
        trackable_group="tracking",
    ),
    *_formats(
        FEDEX,
        _check_digit(_gs1_mod10),
        _checked(r"\d{14}"),  # Ground
        _checked(r"\d{14}", before=r"96\d{5}"),  # Ground 22-digit barcode
        _checked(r"\d{17}"),  # Ground SSCC-18
    ),
    *_formats(DHL, _dhl_mod7, _checked(r"\d{9,10}")),  # Express
    *_formats(
        DHL,
        _unchecked,
        r"J[A-Z]{2,3}\d{9,10}",  # Express piece ID
        r"\d{14}",  # eCommerce
        r"(?:GM|LX|RX|UV|CN|SG|TH|IN|HK|MY)(?=[A-Z]*\d)[0-9A-Z]{10,39}",  # eCommerce
    ),
    # OnTrac counts its letter prefix in the check digit as a digit: C as 4, D as 5.
    *_formats(ONTRAC, _check_digit(_ontrac_mod10, prefix="4"), _checked(r"\d{13}", before="C")),
    *_formats(ONTRAC, _check_digit(_ontrac_mod10, prefix="5"), _checked(r"\d{13}", before="D")),
    *_formats(CANADA_POST, _check_digit(_gs1_mod10), _checked(r"\d{15}")),
    *_formats(PUROLATOR, _check_digit(_luhn), _checked(r"[0-5]\d{10}")),
    *_formats(
        DPD, _dpd, _checked(r"\d{27}", check="[0-9A-Z]"), _checked(r"\d{14}", check="[0-9A-Z]")
    ),
    *_formats(
        OLD_DOMINION,
        _check_digit(_luhn),
        _checked(r"(?:77[78]|072|780)\d{7}"),
        _checked(r"80\d{8}"),  # guaranteed shipment
    ),
    *_formats(PUROLATOR, _unchecked, r"[A-Z]{3}\d{9}"),
    *_formats(CANPAR, _unchecked, r"[CDKLSUXZ]\d{21}"),
    *_formats(SPEE_DEE, _unchecked, r"SP\d{18}"),
    *_formats(GOFO, _unchecked, r"GFUS\d{14}"),
    *_formats(LANDMARK, _unchecked, r"LTN\d{8}N1"),
    *_formats(YODEL, _unchecked, r"JJ?D\d{16}"),
    *_formats(YUNEXPRESS, _unchecked, r"YT\d{16}"),
    *_formats(
        ONTRAC,  # the former LaserShip's formats
        _unchecked,
        r"L[AIEHNX][1-3]\d{7}",
        r"1LS7[12]\d{10}",
        r"1LS7[12]\d{2}01[1-4]\d{6}-1",
        r"1LSCX[0-9A-Z]{10}",
    ),
    *_formats(AMAZON, _unchecked, r"TB[ACM]\d{12}"),
)


# --- public API ------------------------------------------------------------------


def _normalise_number(number: str) -> str:
    return "".join(number.split()).upper()


def _url(carrier: str, number: str) -> str:
    return _URL_TEMPLATES[carrier].format(quote(number, safe=""))


def detect(number: str) -> Carrier | None:
    """The carrier whose number format and check digit `number` matches, if any."""
    normalised = _normalise_number(number)
    if len(set(normalised)) < 2:
        # Empty, or a placeholder such as "000000000000" that some check digits pass.
        return None
    for fmt in _FORMATS:
        match = fmt.pattern.fullmatch(normalised)
        if match is not None and fmt.valid(match):
            trackable = match[fmt.trackable_group] if fmt.trackable_group else normalised
            return Carrier(fmt.carrier, normalised, _url(fmt.carrier, trackable))
    return None


def normalise_carrier_name(name: str) -> str | None:
    """The display name for a carrier as a record spells it, or None if unknown."""
    words = _NAME_WORD.findall(name.casefold())
    leading = ""
    for word in words:
        leading += word
        if leading in _ALIASES:
            return _ALIASES[leading]
    return None


# Pure and asked for the same numbers again and again (each part of each message renders
# them; an order's parcels recur in its notices): remembered rather than re-checked.
@functools.lru_cache(maxsize=4096)
def resolve(number: str | None, declared_carrier: str | None = None) -> Carrier | None:
    """The carrier for a record's number: the declared one when known, else detected."""
    if number is None or not (normalised := _normalise_number(number)):
        return None
    detected = detect(normalised)
    declared = normalise_carrier_name(declared_carrier) if declared_carrier else None
    if declared is None or (detected is not None and detected.name == declared):
        return detected
    return Carrier(declared, normalised, _url(declared, normalised))


def tracking_url(number: str | None, declared_carrier: str | None = None) -> str | None:
    """The public tracking page for a record's number, or None when none is known."""
    carrier = resolve(number, declared_carrier)
    return carrier.tracking_url if carrier else None


def carrier_name(number: str | None, declared_carrier: str | None = None) -> str | None:
    """The carrier's display name, else the declared text as given, else None."""
    carrier = resolve(number, declared_carrier)
    if carrier is not None:
        return carrier.name
    return declared_carrier if declared_carrier and declared_carrier.strip() else None


@dataclass(frozen=True, slots=True)
class Identification:
    """What `notifier carrier` reports: the carrier, how it was chosen, and any caveats."""

    carrier: Carrier | None
    how: str
    notes: tuple[str, ...] = ()


def identify(number: str, declared_carrier: str | None = None) -> Identification:
    """Resolve a number the way delivery does, saying why that carrier was chosen."""
    detected = detect(number)
    declared = normalise_carrier_name(declared_carrier) if declared_carrier else None
    notes: list[str] = []
    if declared_carrier and declared is None:
        notes.append(f"unknown carrier name {declared_carrier!r}: detecting from the number")
    if declared is not None and detected is not None and detected.name != declared:
        notes.append(
            f"the number's format and check digit say {detected.name}; "
            f"the declared carrier {declared} wins"
        )
    carrier = resolve(number, declared_carrier)
    if carrier is None:
        how = "not recognised: no carrier's format and check digit match"
    elif declared is not None:
        how = "declared" + (" (the number's check digit agrees)" if detected == carrier else "")
    else:
        how = "detected from the number's format and check digit"
    return Identification(carrier, how, tuple(notes))
