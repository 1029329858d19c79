# A GAIA node in a container (docs/docker.md, "A devnet in containers").
#
#   make dist                                   # the GAIA wheels (gaia-core, gaia-native, plugins) into dist/
#   docker build --network host -t gaia-node .  # or: docker compose up --build (compose.yaml: 3 nodes)
#
# BASE_IMAGE is any image with Python 3.11 and its venv module: python:3.11-slim from a registry, or one
# built without a registry (docs/docker.md: mmdebstrap bookworm python3 python3-venv | docker import).
# PIP_OPTIONS is passed to pip: --no-index installs only from dist/ (put the third-party wheels there
# first with `pip download --dest dist ...`, as docs/docker.md shows).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG PIP_OPTIONS=""
ARG PLUGINS="gaia-runner-wasm gaia-bench-psutil gaia-zk-mock gaia-comm-zmq gaia-queue-memory"

ENV PATH=/opt/gaia/bin:$PATH \
    GAIA_HOME=/var/lib/gaia \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY dist/*.whl /tmp/wheels/
RUN python3 -m venv /opt/gaia \
    && /opt/gaia/bin/pip install --no-cache-dir ${PIP_OPTIONS} --find-links /tmp/wheels gaia-core ${PLUGINS} \
    && rm -rf /tmp/wheels \
    && mkdir -p /var/lib/gaia /var/lib/gaia-shared \
    && chown 65534:65534 /var/lib/gaia /var/lib/gaia-shared && chmod 0700 /var/lib/gaia

# The node runs as nobody; its home (keys, state.db) is a volume. /var/lib/gaia-shared holds what
# nodes may share (compose.yaml: the first node's dial address), never keys.
USER 65534:65534
VOLUME ["/var/lib/gaia"]
EXPOSE 7700
ENTRYPOINT ["gaia"]
CMD ["node", "--listen", "tcp://0.0.0.0:7700"]
