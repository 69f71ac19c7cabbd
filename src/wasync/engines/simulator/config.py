"""The size and shape of a simulated network, and the named scales tests and benches use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    seed: int = 0
    contacts: int = 10
    groups: int = 3
    individual_chats: int = 8
    messages: int = 300  # history messages across all chats
    group_size_min: int = 3  # participants, ourselves included
    group_size_max: int = 8
    start_ts: int = 1_700_000_000  # 2023-11-14: history starts here
    span_seconds: int = 365 * 86_400  # and spans this long
    own_phone: str = "15550100001"
    # The share of people WhatsApp addresses by LID (some of them hide their number),
    # and whether a person's LID <-> number pair is told only after both were seen.
    lid_fraction: float = 0.0
    late_mappings: bool = False

    def __post_init__(self) -> None:
        problems = []
        if min(self.contacts, self.groups, self.individual_chats, self.messages) < 0:
            problems.append("counts must not be negative")
        if self.individual_chats > self.contacts:
            problems.append(
                f"individual_chats ({self.individual_chats}) exceeds contacts ({self.contacts})"
            )
        if not 2 <= self.group_size_min <= self.group_size_max:
            problems.append("group sizes need 2 <= group_size_min <= group_size_max")
        if self.span_seconds < 1:
            problems.append("span_seconds must be at least 1")
        if not self.own_phone.isdigit():
            problems.append(f"own_phone must be digits, not {self.own_phone!r}")
        if not 0.0 <= self.lid_fraction <= 1.0:
            problems.append(f"lid_fraction must be within 0..1, not {self.lid_fraction}")
        if problems:
            raise ValueError("invalid NetworkConfig: " + "; ".join(problems))

    def replace(self, **changes: Any) -> NetworkConfig:
        return dataclasses.replace(self, **changes)


SCALES: dict[str, NetworkConfig] = {
    "tiny": NetworkConfig(
        contacts=10, groups=3, individual_chats=8, messages=300, group_size_min=3, group_size_max=8
    ),
    "small": NetworkConfig(
        contacts=150,
        groups=20,
        individual_chats=100,
        messages=20_000,
        group_size_min=3,
        group_size_max=40,
    ),
    "medium": NetworkConfig(
        contacts=1_200,
        groups=200,
        individual_chats=1_000,
        messages=200_000,
        group_size_min=3,
        group_size_max=120,
    ),
    "large": NetworkConfig(
        contacts=6_000,
        groups=1_000,
        individual_chats=4_000,
        messages=1_000_000,
        group_size_min=3,
        group_size_max=256,
    ),
}
