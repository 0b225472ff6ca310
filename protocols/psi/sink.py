"""In-memory message sink: runs a client and a server role in one thread, for tests.

Every message goes through ``SerializeToString`` / ``FromString``, so the codec is
exercised exactly as over gRPC; ``tap(direction, data)`` sees every serialized message
("client->server" or "server->client"), which the transcript tests use.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from google.protobuf.message import DecodeError

from .elements import PsiResult
from .errors import PeerAbortedError, PsiError, PsiProtocolError
from .psi_pb2 import PsiMessage
from .roles import ClientRole, ServerRole

Tap = Callable[[str, bytes], None]


def run_in_memory(client: ClientRole, server: ServerRole, *, tap: Tap | None = None,
                  mutate: Callable[[str, int, bytes], bytes | list[bytes] | None] | None = None
                  ) -> tuple[PsiResult, PsiResult]:
    """Run both roles to completion; return (client result, server result).

    ``mutate(direction, index, data)`` may replace a serialized message by other bytes, a
    list of messages (e.g. a replay) or None (dropped) before delivery: the protocol-error
    probes use it.  Bytes that do not parse raise PsiProtocolError.  If a role raises,
    the other role receives that role's ``Abort`` and the first error is re-raised.
    """
    queues = {"client->server": deque(), "server->client": deque()}
    counts = {"client->server": 0, "server->client": 0}
    sizes = {"client->server": 0, "server->client": 0}

    def emit(direction: str, messages: Iterable[PsiMessage]) -> None:
        for message in messages:
            data = message.SerializeToString()
            index = counts[direction]
            counts[direction] += 1
            delivered = [data] if mutate is None else mutate(direction, index, data)
            if isinstance(delivered, bytes):
                delivered = [delivered]
            for item in delivered or ():
                if tap is not None:
                    tap(direction, item)
                sizes[direction] += len(item)
                queues[direction].append(item)

    roles = {"client->server": server, "server->client": client}
    senders = {"client->server": client, "server->client": server}
    emit("client->server", client.start())
    emit("server->client", server.start())
    while not (client.finished and server.finished):
        direction = next((d for d in ("client->server", "server->client") if queues[d]), None)
        if direction is None:
            raise PsiProtocolError("in-memory run: both roles wait for a message (truncated run)")
        receiver = roles[direction]
        back = "server->client" if direction == "client->server" else "client->server"
        try:
            try:
                message = PsiMessage.FromString(queues[direction].popleft())
            except DecodeError as exc:
                raise PsiProtocolError(f"undecodable message ({exc})") from exc
            emit(back, receiver.handle(message))
        except PeerAbortedError:
            raise
        except PsiError as exc:
            other = senders[direction]
            try:
                other.handle(PsiMessage.FromString(
                    receiver.abort_message(str(exc)).SerializeToString()))
            except PeerAbortedError:
                pass
            raise
    client_result, server_result = client.result(), server.result()
    client_result.stats.update(bytes_sent=sizes["client->server"], bytes_received=sizes["server->client"],
                               messages_sent=counts["client->server"], messages_received=counts["server->client"])
    server_result.stats.update(bytes_sent=sizes["server->client"], bytes_received=sizes["client->server"],
                               messages_sent=counts["server->client"], messages_received=counts["client->server"])
    return client_result, server_result
