"""The Docker Engine connection, and the labels by which this plugin finds its own containers."""

from __future__ import annotations

import hashlib
import logging
import math
import time

import docker
import docker.errors
import requests

from gaia_core.plugin_api import NodeContext
from gaia_runner_docker.settings import DockerSettings

#: Label on every container this plugin starts; its value names the owning node (its id and home, hashed).
OWNER_LABEL = "org.gaia.runner-docker.home"
#: Label carrying when a container's task is over for good (Unix seconds): past it, any node may remove it.
EXPIRES_LABEL = "org.gaia.runner-docker.expires"
#: Label carrying the id of the task a container runs.
TASK_LABEL = "org.gaia.task"
#: Seconds to wait for the engine to answer a ping before calling it unreachable.
PING_TIMEOUT_S = 3.0
#: HTTP connections kept to the engine (each running task holds one for its output stream).
POOL = 64


class EngineUnavailable(Exception):
    """No Docker engine answered; the message says where it was looked for and what to do."""


def owner(context: NodeContext) -> str:
    """The owner label value of the node of ``context``: its id and home, so that nodes sharing one engine
    never take each other's containers, even with homes at the same path (one per container)."""
    node_id = context.identity.node_id if context.identity is not None else ""
    return hashlib.sha256(f"{node_id}\0{context.home.root}".encode()).hexdigest()[:32]


def connect(settings: DockerSettings, *, timeout_s: float = 60.0) -> docker.DockerClient:
    """A client of the engine at ``settings.base_url`` (else ``$DOCKER_HOST``, else the local socket)
    that has answered a ping; EngineUnavailable (one line, with a remedy) when none answers."""
    where = settings.base_url or "$DOCKER_HOST or unix:///var/run/docker.sock"
    try:
        if settings.base_url:
            client = docker.DockerClient(base_url=settings.base_url, timeout=int(timeout_s), max_pool_size=POOL)
        else:
            client = docker.from_env(timeout=int(timeout_s), max_pool_size=POOL)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise EngineUnavailable(f"no Docker engine at {where} ({first_line(exc)}); start dockerd "
                                "(.ci/ensure-docker) or set [runner_docker] base_url") from None
    try:
        client.api.get(f"{client.api.base_url}/_ping", timeout=PING_TIMEOUT_S).raise_for_status()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        client.close()
        raise EngineUnavailable(f"the Docker engine at {where} does not answer ({first_line(exc)}); "
                                "start dockerd (.ci/ensure-docker) or set [runner_docker] base_url") from None
    return client


def reap(client: docker.DockerClient, label: str, log: logging.Logger) -> int:
    """Kill and remove every container left by the node whose :func:`owner` label is ``label`` (e.g. after a
    crash); how many."""
    found = client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={label}"})
    removed = _remove_all(client, [c["Id"] for c in found])
    if removed:
        log.warning("gaia-runner-docker: removed %d container(s) left by an earlier run of this node", removed)
    return removed


def sweep(client: docker.DockerClient, log: logging.Logger) -> int:
    """Kill and remove every container of this plugin, whichever node's, past its :data:`EXPIRES_LABEL`: its
    owner would have removed it by then unless it died (killed -9, never restarted); how many."""
    now = time.time()
    expired = [c["Id"] for c in client.api.containers(all=True, filters={"label": OWNER_LABEL})
               if _expires(c.get("Labels") or {}) < now]
    removed = _remove_all(client, expired)
    if removed:
        log.warning("gaia-runner-docker: removed %d container(s) past their task's end", removed)
    return removed


def _expires(labels: dict[str, str]) -> float:
    try:
        return float(labels[EXPIRES_LABEL])
    except (KeyError, ValueError):
        return math.inf  # no such label: only its owner removes it


def _remove_all(client: docker.DockerClient, containers: list[str]) -> int:
    removed = 0
    for container in containers:
        try:
            client.api.remove_container(container, force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            continue
    return removed


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def explain(exc: docker.errors.APIError) -> str:
    """The engine's own words for a refused request, on one line."""
    return one_line(str(exc.explanation or first_line(exc)))[:500]


def one_line(text: str) -> str:
    """``text`` on one line of printable characters: whitespace runs become one space, and what a terminal
    would act on (escape sequences a container printed, or put in its command) becomes ``?``."""
    return "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
