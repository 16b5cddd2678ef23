"""The servers under test, each with the configuration the bench writes for
it, and the upstream behind them all ("direct" is the upstream itself)."""
from .acme_edge import AcmeEdge, acme_edges
from .base import Ports, Server
from .haproxy import Haproxy
from .nginx import Nginx, Upstream

__all__ = ["AcmeEdge", "Haproxy", "Nginx", "Ports", "Server", "Upstream", "acme_edges"]
