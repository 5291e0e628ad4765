"""Reading a /metrics answer (the Prometheus text format) in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str, family: str) -> dict[str, float]:
    """The samples of `family` in `text`, named `<sample>` or `<sample>/<labels values, in order>`
    (e.g. `gigwire_gc_pause_seconds_count/2`, `gigwire_loop_lag_seconds_bucket/0.1`)."""
    out: dict[str, float] = {}
    for found in text_string_to_metric_families(text):
        if found.name != family:
            continue
        for sample in found.samples:
            labels = "/".join(sample.labels.values())
            out[sample.name + (f"/{labels}" if labels else "")] = sample.value
    return out


def gc_pause_counts(text: str) -> dict[str, float]:
    """Collections counted by `gigwire_gc_pause_seconds`, by generation ("0", "1", "2")."""
    prefix = "gigwire_gc_pause_seconds_count/"
    return {
        k[len(prefix) :]: v
        for k, v in samples(text, "gigwire_gc_pause_seconds").items()
        if k.startswith(prefix)
    }
