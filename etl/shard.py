"""Sharding: n processes or machines share a step, each taking the sensors (or stations) of its shard.

A key belongs to shard i of n (1 ≤ i ≤ n) when crc32(key) mod n = i - 1: stable across runs, machines
and Python versions, so a sensor always lands in the same shard.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class Shard:
    index: int = 1
    count: int = 1

    def __post_init__(self):
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 1 ≤ i ≤ n")

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """'i/n' → Shard; None or '' → the whole (1/1)."""
        if not text:
            return cls()
        try:
            index, count = (int(part) for part in text.split("/"))
            return cls(index, count)
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected i/n with 1 ≤ i ≤ n, e.g. 2/3") from None

    @property
    def whole(self) -> bool:
        return self.count == 1

    def contains(self, key: str) -> bool:
        return self.whole or zlib.crc32(str(key).encode()) % self.count == self.index - 1

    def __str__(self) -> str:
        return "all" if self.whole else f"{self.index}/{self.count}"


class ShardParam(click.ParamType):
    """`--shard i/n` on the command line."""

    name = "i/n"

    def convert(self, value, param, ctx):
        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
