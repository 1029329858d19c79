"""``gaia blob``: add, list, read, remove and pin the blobs of this home (docs/blobs.md)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from gaia_core.blobs import BlobInfo, home_store
from gaia_core.console import print_json
from gaia_core.state import State

#: The largest cap ``gaia blob cap`` takes, in MiB (1 PiB).
MAX_CAP_MIB = 1 << 30


def _row(info: BlobInfo) -> dict[str, object]:
    return {"id": info.id, "size": info.size, "chunks": info.chunks, "held": info.held, "complete": info.complete,
            "pinned": info.pinned, "fetched": info.fetched, "added": info.added, "last_used": info.last_used}


def _echo(info: BlobInfo, as_json: bool, line: str) -> None:
    if as_json:
        print_json(_row(info))
    else:
        click.echo(line)


@click.group()
def blob() -> None:
    """Store large files (model weights, datasets, images) as content-addressed blobs that tasks name by id.

    Every command works on the home's store, whether or not a node runs on it (the node shares it).
    """


@blob.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--pin", is_flag=True, help="Pin it: never evicted by the cap, nor removed when a job ends; "
              "served to any peer that asks (published).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the blob's id, size and state.")
@click.pass_obj
def add(state: State, file: Path, pin: bool, as_json: bool) -> None:
    """Add FILE (streamed in 1 MiB chunks) and print its blob id."""
    store = home_store(state.home)
    try:
        info = store.add_file(file, pinned=pin)
    finally:
        store.close()
    _echo(info, as_json, info.id)


@blob.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: every blob, the bytes used and the cap.")
@click.pass_obj
def ls(state: State, as_json: bool) -> None:
    """List the blobs here, most recently used first."""
    store = home_store(state.home)
    try:
        infos, used, cap = store.blobs(), store.used_bytes(), store.cap_bytes
    finally:
        store.close()
    if as_json:
        print_json({"blobs": [_row(i) for i in infos], "used_bytes": used, "cap_bytes": cap})
        return
    click.echo(f"{len(infos)} blob(s), {used:,} of {cap:,} bytes")
    for i in infos:
        state_text = "complete" if i.complete else f"{i.held}/{i.chunks} chunks"
        used_at = time.strftime("%Y-%m-%d %H:%M", time.localtime(i.last_used))
        click.echo(f"{i.id}  {i.size:>15,}  {state_text}{'  pinned' if i.pinned else ''}  used {used_at}")


@blob.command()
@click.argument("blob_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to this file (default: stdout).")
@click.pass_obj
def get(state: State, blob_id: str, output: Path | None) -> None:
    """Write blob ID to a file (written whole, then renamed into place) or to stdout, checking every chunk."""
    store = home_store(state.home)
    try:
        if output is not None:
            store.export(blob_id, output)
            return
        try:
            for chunk in store.chunks(blob_id):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # the reader left (e.g. `| head`): stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(141) from None
    finally:
        store.close()


@blob.command()
@click.argument("blob_id", metavar="ID")
@click.pass_obj
def rm(state: State, blob_id: str) -> None:
    """Delete blob ID from this home, pinned or not."""
    store = home_store(state.home)
    try:
        store.remove(blob_id)
    finally:
        store.close()
    click.echo(f"removed {blob_id}")


def _pin_command(pinned: bool) -> click.Command:
    verb = "pin" if pinned else "unpin"

    @click.argument("blob_id", metavar="ID")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON: the blob's state.")
    @click.pass_obj
    def command(state: State, blob_id: str, as_json: bool) -> None:
        store = home_store(state.home)
        try:
            info = store.pin(blob_id, pinned)
        finally:
            store.close()
        _echo(info, as_json, f"{verb}ned {blob_id}")

    command.__doc__ = ("Pin blob ID: never evicted by the cap nor removed when a job ends; served to any peer "
                       "(published)." if pinned else
                       "Unpin blob ID: the cap may evict it again, and only peers sent a task naming it may read it.")
    return click.command(verb)(command)


blob.add_command(_pin_command(True))
blob.add_command(_pin_command(False))


@blob.command()
@click.argument("mib", required=False, type=click.IntRange(0, MAX_CAP_MIB))
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the cap, the bytes used and the ids evicted.")
@click.pass_obj
def cap(state: State, mib: int | None, as_json: bool) -> None:
    """Show the store's size cap, or set it to MIB mebibytes (evicting the least recently used unpinned blobs)."""
    store = home_store(state.home)
    try:
        evicted = [] if mib is None else store.set_cap(mib << 20)
        cap_bytes, used = store.cap_bytes, store.used_bytes()
    finally:
        store.close()
    if as_json:
        print_json({"cap_bytes": cap_bytes, "used_bytes": used, "evicted": evicted})
        return
    click.echo(f"cap {cap_bytes >> 20} MiB, {used:,} bytes used")
    for blob_id in evicted:
        click.echo(f"evicted {blob_id}")
