from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from keyledger.kit.errors import Conflict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: RFC 5176's port for Disconnect-Request and CoA-Request.
DEFAULT_COA_PORT = 3799


@dataclass(frozen=True, slots=True)
class Nas:
    """A hotspot (network access server) of one business: it may ask from ``network`` and signs
    with ``secret``."""

    id: int
    uid: UUID
    property_id: int
    business_id: int
    name: str | None
    network: Network
    secret: bytes
    coa_port: int
    require_message_authenticator: bool


class DisconnectOutcome(StrEnum):
    """How a NAS answered a Disconnect-Request (the outcome of a ``hotspot.disconnect`` event)."""

    ACK = "Ack"
    NAK = "Nak"
    NO_ANSWER = "NoAnswer"


@dataclass(frozen=True, slots=True)
class AccountingResult:
    """What an Accounting-Request did: the seconds it consumed (its growth of
    ``Acct-Session-Time``), and whether it reached a session."""

    seconds: int
    session_uid: UUID | None
    ended: bool


@dataclass(frozen=True, slots=True)
class PendingDisconnect:
    """An open accounting session whose hotspot session its voucher's withdrawal ended."""

    id: int
    nas_id: int
    nas_address: str
    session_uid: UUID
    acct_session_id: str
    user_name: str
    calling_station_id: str
    attempts: int
    property_id: int
    credential_uid: UUID
    end_reason: str


def parse_network(text: str) -> Network:
    """An address (a network of one) or a CIDR network; ValueError otherwise."""
    return ipaddress.ip_network(text.strip(), strict=False)


#: The broadest network a NAS may have without ``allow_wide_network`` (prefix length by IP
#: version): a /8 of IPv4, a /32 of IPv6 (an ISP's allocation).
NARROWEST_WIDE_PREFIX = {4: 8, 6: 32}


def is_wide(network: Network) -> bool:
    """Broader than ``NARROWEST_WIDE_PREFIX``: one NAS record for a good part of the Internet."""
    return network.prefixlen < NARROWEST_WIDE_PREFIX[network.version]


def overlap(first: Network, second: Network) -> bool:
    """Whether some address is in both networks (of the same IP version)."""
    if first.version != second.version:
        return False
    return first.overlaps(second)


class NetworkOverlap(Conflict):
    """A NAS's network shares an address with a NAS of another business (``other_*``)."""

    def __init__(
        self, network: Network, *, other_id: int, other_network: str, other_business_id: int
    ) -> None:
        super().__init__(
            f"{network} overlaps NAS {other_id} ({other_network}) of another business "
            f"({other_business_id}).",
            subject="address",
        )
        self.network = network
        self.other_id = other_id
        self.other_network = other_network
        self.other_business_id = other_business_id
