"""The proxy's actors: listeners, connections, peer pools, load balancers, health checks and services.

This layer sits on top of the kernel (`actorproxy`) and of `supervisors`.
"""

__all__: list[str] = []
