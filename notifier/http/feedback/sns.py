"""Amazon SNS's HTTP(S) deliveries: the envelope, its signature, the signing certificate.

SNS signs each message (version 1: SHA1withRSA, version 2: SHA256withRSA) over a
string-to-sign made of some of its fields, in a fixed order, each as `Name\\nvalue\\n`; which
fields depends on the message type. The public key comes from the certificate at
`SigningCertURL`, which is trusted only when the URL matches the configured pattern (by default
https on an `sns.<region>.amazonaws.com` host) — otherwise anyone could sign with a certificate
of their own. Certificates are fetched once and kept (a bounded cache): SNS signs with a handful.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifier.errors import NotifierError
from notifier.http.feedback.common import PayloadInvalid, Unverified, check_fresh, iso_time

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

# The string-to-sign's fields, in order (AWS SNS "Verifying the signatures of Amazon SNS
# messages"); Subject only when the notification has one.
_SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS[UNSUBSCRIBE_CONFIRMATION] = _SIGNED_FIELDS[SUBSCRIPTION_CONFIRMATION]
_OPTIONAL = frozenset({"Subject"})
_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

MAX_CERTIFICATE_BYTES = 64 * 1024
CACHED_CERTIFICATES = 32  # SNS rotates a few per region; a bound keeps junk URLs from growing it


class SnsUnreachable(NotifierError):
    """SNS could not be reached now (network, timeout, its 5xx): worth a retry."""


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """One SNS delivery, its signature not yet checked."""

    type: str
    message_id: str
    topic_arn: str
    timestamp: datetime
    message: str
    signature: bytes
    signature_version: str
    signing_cert_url: str
    subscribe_url: str | None
    fields: Mapping[str, str]  # every string field, for the string-to-sign

    @classmethod
    def from_body(cls, body: bytes) -> SnsMessage:
        """The envelope of a delivery; Unverified when it is not one (nothing to verify)."""
        try:
            value = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise Unverified("not an SNS message: the body is not JSON") from None
        if not isinstance(value, dict):
            raise Unverified("not an SNS message: the body is not a JSON object")
        fields = {name: item for name, item in value.items() if isinstance(item, str)}
        kind = fields.get("Type", "")
        if kind not in _SIGNED_FIELDS:
            raise Unverified(f"not an SNS message: Type is {kind[:40]!r}")
        for name in (*_SIGNED_FIELDS[kind], "Signature", "SignatureVersion", "SigningCertURL"):
            if name not in fields and name not in _OPTIONAL:
                raise Unverified(f"SNS {kind} without {name}")
        try:
            signature = base64.b64decode(fields["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise Unverified("SNS Signature is not base64") from None
        try:
            timestamp = iso_time(fields["Timestamp"], what="SNS Timestamp")
        except PayloadInvalid as exc:
            raise Unverified(str(exc)) from None
        return cls(
            type=kind,
            message_id=fields["MessageId"],
            topic_arn=fields["TopicArn"],
            timestamp=timestamp,
            message=fields["Message"],
            signature=signature,
            signature_version=fields["SignatureVersion"],
            signing_cert_url=fields["SigningCertURL"],
            subscribe_url=fields.get("SubscribeURL"),
            fields=fields,
        )

    def string_to_sign(self) -> bytes:
        parts = []
        for name in _SIGNED_FIELDS[self.type]:
            if name in self.fields:
                parts.append(f"{name}\n{self.fields[name]}\n")
        return "".join(parts).encode("utf-8")


class SnsVerifier:
    """Checks SNS deliveries: topic, certificate URL, freshness, signature."""

    def __init__(
        self,
        *,
        topic_arns: frozenset[str],
        cert_url_pattern: re.Pattern[str],
        timeout: float,
        client: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self.topic_arns = topic_arns
        self.cert_url_pattern = cert_url_pattern
        self.timeout = timeout
        self._client = client or (lambda: httpx.AsyncClient(timeout=timeout))
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()

    def trusted_url(self, url: str | None) -> bool:
        return bool(url) and self.cert_url_pattern.match(url or "") is not None

    async def verify(self, message: SnsMessage, *, now: datetime) -> None:
        """Unverified unless `message` is fresh, from an accepted topic, and signed by the key
        of a certificate at a trusted URL. SnsUnreachable when it cannot be fetched."""
        if message.topic_arn not in self.topic_arns:
            raise Unverified(f"topic {message.topic_arn[:200]} is not in NOTIFIER_SES_TOPIC_ARNS")
        if not self.trusted_url(message.signing_cert_url):
            raise Unverified(
                "SigningCertURL does not match NOTIFIER_SES_CERT_URL_PATTERN:"
                f" {message.signing_cert_url[:200]}"
            )
        hash_type = _HASHES.get(message.signature_version)
        if hash_type is None:
            raise Unverified(f"unknown SNS SignatureVersion {message.signature_version[:10]!r}")
        check_fresh(message.timestamp, now, what="SNS Timestamp")
        certificate = await self.certificate(message.signing_cert_url)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Unverified("the SNS signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Unverified("the SNS signing certificate's key is not RSA")
        try:
            key.verify(message.signature, message.string_to_sign(), padding.PKCS1v15(), hash_type())
        except InvalidSignature:
            raise Unverified("the SNS signature does not match the message") from None

    async def certificate(self, url: str) -> x509.Certificate:
        cached = self._certificates.get(url)
        if cached is not None:
            self._certificates.move_to_end(url)
            return cached
        pem = await self._fetch(url)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise Unverified("SigningCertURL did not give a PEM certificate") from None
        self._certificates[url] = certificate
        while len(self._certificates) > CACHED_CERTIFICATES:
            self._certificates.popitem(last=False)
        return certificate

    async def _fetch(self, url: str) -> bytes:
        try:
            async with self._client() as client, client.stream("GET", url) as response:
                if response.status_code >= 500:
                    raise SnsUnreachable(f"{url} answered {response.status_code}")
                if response.status_code != 200:
                    raise Unverified(f"SigningCertURL answered {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_CERTIFICATE_BYTES:
                        raise Unverified("SigningCertURL gave more than a certificate")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise SnsUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None

    async def confirm(self, message: SnsMessage) -> None:
        """Confirm a verified SubscriptionConfirmation by fetching its SubscribeURL, which must
        be on a trusted host as well (it is signed, but a pattern costs nothing)."""
        url = message.subscribe_url
        if not self.trusted_url(url) or url is None:
            raise Unverified("SubscribeURL does not match NOTIFIER_SES_CERT_URL_PATTERN")
        try:
            async with self._client() as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise SnsUnreachable(f"SubscribeURL: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise SnsUnreachable(f"SubscribeURL answered {response.status_code}")


def loads_message(message: SnsMessage) -> Any:
    """The notification's Message as JSON (SES puts its notification there)."""
    try:
        return json.loads(message.message)
    except (ValueError, RecursionError):
        raise PayloadInvalid("the SNS Message is not JSON") from None
