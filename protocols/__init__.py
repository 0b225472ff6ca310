"""Private two- and three-party protocols: PSI (``protocols.psi``) and MPC (``protocols.mpc``).

Depends on nothing else of settlechain's.  Inside a protocol: a pure deterministic
core over numpy arrays, role objects that turn messages into messages, a codec for
the wire, and the transport only at the edge.
"""
