"""gaia-comm-zmq: GAIA's peer-to-peer transport over ZeroMQ with CurveZMQ."""

from gaia_comm_zmq.transport import ZmqTransport

__version__ = "0.1.0"
__all__ = ["ZmqTransport", "__version__"]
