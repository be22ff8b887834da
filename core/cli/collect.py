"""``agentracer collect``: receive OpenTelemetry traces over OTLP/HTTP and keep each run as a trajectory."""

from __future__ import annotations

import signal
from typing import Any

import click

from ..errors import InputError
from ._io import check_output_store


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@click.command("collect")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Store (.jsonl or .db) each received run is appended to.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=4318, show_default=True,
              help="Port to listen on (4318: OTLP/HTTP's; 0: any free one).")
@click.option("--idle", "idle_s", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds after which a trace whose root never arrives is written as it is.")
def collect(output: str, host: str, port: int, idle_s: float) -> None:
    """Receive OTLP/HTTP traces (protobuf or JSON) and append each run to OUTPUT as a trajectory.

    Point an application's OpenTelemetry exporter here (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set to the URL this
    prints), or a collector's otlphttp exporter; spans of OpenInference or OpenTelemetry GenAI instrumentations
    become steps as ``agentracer import openinference`` makes them. Runs until interrupted (Ctrl-C or SIGTERM),
    then writes the traces still open.
    """
    from ..formats.otlp_http_receiver import TraceReceiver

    check_output_store(output)
    try:
        receiver = TraceReceiver(output, host=host, port=port, idle_s=idle_s)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})", where="--port") from None
    signal.signal(signal.SIGTERM, _interrupt)
    click.echo(f"listening on {receiver.url}; runs go to {output} (Ctrl-C to stop)", err=True)
    try:
        receiver.serve()
    except KeyboardInterrupt:
        pass
    traces = receiver.traces
    click.echo(f"collected {len(traces.collected)} run(s) into {output}"
               + (f"; refused {receiver.refused} request(s)" if receiver.refused else ""), err=True)
