"""Run one transport with an echo handler: ``python -m gaia_comm_zmq.peer --home DIR [options]``.

For multi-process tests and for trying the network by hand. It prints one
JSON line per event on stdout (``started`` with its node id and dial address,
``peer`` on each state change, ``announce``) and stops cleanly on SIGTERM or
SIGINT. Requests are answered with their own body.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import attrs

from gaia_comm_zmq.transport import ZmqTransport
from gaia_core.plugin_api import (
    Config,
    Envelope,
    GaiaError,
    Gate,
    Home,
    Identity,
    NodeContext,
    NodeRecord,
    PeerInfo,
    load_config,
)


class EchoHandler:
    """Answers every request with its body and reports events as JSON lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def emit(self, **event: object) -> None:
        with self._lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    def on_request(self, envelope: Envelope) -> bytes:
        return envelope.body

    def on_announce(self, envelope: Envelope) -> None:
        self.emit(event="announce", sender=envelope.sender, kind=envelope.kind, size=len(envelope.body))

    def on_peer(self, peer: PeerInfo) -> None:
        self.emit(event="peer", node_id=peer.node_id, state=peer.state, address=peer.address)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gaia_comm_zmq.peer", description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="node home (an identity is created when absent)")
    parser.add_argument("--listen", help="endpoint to bind, e.g. tcp://127.0.0.1:* for a free port")
    parser.add_argument("--advertise", help="address peers should dial (default: the bound endpoint)")
    parser.add_argument("--bootstrap", action="append", default=[], help="peer address to dial (repeatable)")
    parser.add_argument("--insecure", action="store_true", help="plaintext, no CurveZMQ (debugging only)")
    parser.add_argument("--auth", choices=["open", "allowlist"])
    parser.add_argument("--allow", action="append", default=[], help="node id allowed with --auth allowlist")
    parser.add_argument("--heartbeat", type=float, help="seconds between heartbeats")
    parser.add_argument("--down-after", type=float, help="seconds of silence before a peer is down")
    return parser.parse_args(argv)


def _config(home: Home, args: argparse.Namespace) -> Config:
    config = load_config(home)
    node = attrs.evolve(config.node, listen=args.listen or config.node.listen,
                        advertise=args.advertise or config.node.advertise)
    net = config.network
    net = attrs.evolve(net, bootstrap=list(net.bootstrap) + args.bootstrap,
                       security="insecure" if args.insecure else net.security, auth=args.auth or net.auth,
                       allowlist=list(net.allowlist) + args.allow, heartbeat_s=args.heartbeat or net.heartbeat_s,
                       down_after_s=args.down_after or net.down_after_s)
    return attrs.evolve(config, node=node, network=net)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, the error's exit code otherwise."""
    args = _parse(argv)
    home = Home(Path(args.home).resolve())
    handler = EchoHandler()
    try:
        if not Identity.exists(home.identity_dir):
            Identity.generate().save(home.identity_dir)
        identity = Identity.load(home.identity_dir)
        context = NodeContext(config=_config(home, args), home=home, identity=identity)
        transport = ZmqTransport(context)
        record = NodeRecord(node_id=identity.node_id, name=home.root.name)
        address = transport.start(Gate(handler), record)
    except GaiaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    handler.emit(event="started", node_id=identity.node_id, address=address)
    try:
        while not done.wait(0.5):
            pass
    finally:
        transport.stop()
    handler.emit(event="stopped", node_id=identity.node_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
