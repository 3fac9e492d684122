"""The DDP comm hook, where backward meets the exchange: pad each gradient bucket to its emulated
hand-over (pacing), mark `ready`, let the strategy send it, count its inter-site bytes and
let the link add the delay for the route and bytes it used."""
from __future__ import annotations

from bench.costs import links


class CommHook:
    """DDP comm hook: pad the bucket (pacing), mark `ready`, let the strategy exchange it, add
    link delay for the route and bytes it used."""

    def __init__(self, clock, pacer, link, exchange, sites: list[str], bytes_scale: float = 1.0):
        self.clock, self.pacer, self.link, self.exchange = clock, pacer, link, exchange
        self.sites = sites
        self.bytes_scale = bytes_scale  # emulated bytes per real byte (an emulated workload)
        self.bucket_bytes: list[float] = []  # bytes of each bucket handed to comm this step
        self.inter_site_bytes = 0.0  # what one crossing of the inter-site link carried

    def start_backward(self) -> None:
        self.bucket_bytes, self.inter_site_bytes = [], 0.0

    def count(self, route: str, nbytes: int) -> float:
        """Emulated bytes of an exchange, added to the step's inter-site tally."""
        nbytes = nbytes * self.bytes_scale
        self.inter_site_bytes += links.inter_site_bytes(route, nbytes, self.sites)
        return nbytes

    def on_bucket(self, _state, bucket):
        handed = self.pacer.pad_bucket(bucket.buffer().numel())
        handed = handed if self.pacer.timeline else None  # an emulated instant, or real time
        self.clock.mark("ready", at=handed)  # the last call of the step is this rank's t_ready
        sent = self.exchange(bucket)
        nbytes = self.count(sent.route, sent.nbytes)
        self.bucket_bytes.append(nbytes)
        return self.link.wrap(sent.fut, len(self.bucket_bytes) - 1, nbytes, handed, sent.route,
                              sent.rounds)
