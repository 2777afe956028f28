"""The air and the gateway's dongle: a bumble LocalLink, and a virtual controller served as HCI over TCP.

The gateway process opens `tcp-client:127.0.0.1:<hci-port>` and runs its own bumble host on the
controller served here, exactly as it would on a USB dongle (same wiring as bumble/apps/controllers.py).

`RadioController` fixes what bumble 0.0.236's virtual controller gets wrong once its host lives in
another process (the host cannot poke controller attributes any more):
  1. LE_Create_Connection_Cancel really cancels: the pending connect ends with an LE Connection Complete
     carrying an error, so the host's bounded connect returns instead of leaving the initiator stuck.
  2. HCI_Reset, and a TCP client connecting or leaving, drop every link (peers are told, so locks
     re-advertise) and clear scanning, advertising and the pending connect: like unplugging a dongle.
  3. An exception while handling an HCI packet is contained and logged; the link and socket stay up.

`HciTcpServer` serves one host at a time. A new client replaces the previous one (whose socket is
closed): after a gateway crash its old socket may linger half-open, and the restarted gateway must win.
"""

from __future__ import annotations

import asyncio
import logging

from bumble import hci, ll
from bumble.controller import Controller
from bumble.transport.common import PacketParser

log = logging.getLogger(__name__)


class RadioController(Controller):
    """A bumble virtual controller with working connect-cancel, reset and error containment."""

    def drop_all_links(self, why: str) -> None:
        dropped = len(self.le_connections)
        for connection in list(self.le_connections.values()):
            try:  # tell the peer the link is gone; a lock then advertises again
                connection.send_ll_control_pdu(
                    ll.TerminateInd(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR)
                )
            except Exception as exc:  # the peer already left the link (vanished lock)
                log.debug("terminate to %s failed: %r", connection.peer_address, exc)
        self.le_connections.clear()
        self.pending_le_connection = None
        self.le_scan_enable = False
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()
        if dropped or why != "HCI_Reset":
            log.info("%s: dropped %d link(s) (%s)", self.name, dropped, why)

    def on_hci_reset_command(self, command: hci.HCI_Reset_Command) -> hci.HCI_StatusReturnParameters:
        self.drop_all_links("HCI_Reset")
        return super().on_hci_reset_command(command)

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        failed = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # The spec orders Command Complete first; the caller queues it right after we return.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failed)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def on_hci_disconnect_command(self, command: hci.HCI_Disconnect_Command) -> None:
        try:
            super().on_hci_disconnect_command(command)
        except Exception as exc:  # the peer left the link: complete the disconnection locally
            log.warning("%s: disconnect of a peer no longer on the link (%r)", self.name, exc)
            connection = self.find_le_connection_by_handle(command.connection_handle)
            if connection is not None and connection.peer_address in self.le_connections:
                self.on_le_disconnected(connection, command.reason)

    def on_packet(self, packet: bytes) -> None:
        try:
            super().on_packet(packet)
        except Exception:
            log.exception("%s: HCI packet handling failed (contained)", self.name)


class _SocketSink:
    """Controller -> host direction: writes H4 packets to whichever client is connected now."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def on_packet(self, packet: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(packet)


class _HciClientProtocol(asyncio.Protocol):
    def __init__(self, server: HciTcpServer) -> None:
        self._server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP server hands a Transport
        self._server.client_connected(self)

    def data_received(self, data: bytes) -> None:
        self._server.data_from(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.client_left(self)


class HciTcpServer:
    """Serves `controller` as an H4 HCI stream on a loopback TCP port."""

    def __init__(self, controller: RadioController) -> None:
        self.controller = controller
        self._sink = _SocketSink()
        self._parser = PacketParser(controller)
        self._client: _HciClientProtocol | None = None
        self._server: asyncio.Server | None = None
        controller.host = self._sink

    @property
    def client_connected_now(self) -> bool:
        return self._client is not None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _HciClientProtocol(self), host, port)

    async def close(self) -> None:
        if self._client is not None and self._client.transport is not None:
            self._client.transport.close()
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def client_connected(self, client: _HciClientProtocol) -> None:
        previous, self._client = self._client, client
        if previous is not None and previous.transport is not None:
            log.warning("HCI: a new host connected; closing the previous one")
            previous.transport.close()
        self._parser.reset()  # a half-read packet from the previous client must not leak
        self._sink.transport = client.transport
        self.controller.drop_all_links("host connected")
        log.info("HCI: host connected")

    def data_from(self, client: _HciClientProtocol, data: bytes) -> None:
        if client is not self._client:
            return  # a replaced client's last bytes
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # garbage on the socket: resynchronise on the next packet
            log.warning("HCI: unparseable data from host (%r); parser reset", exc)
            self._parser.reset()

    def client_left(self, client: _HciClientProtocol) -> None:
        if client is not self._client:
            return
        self._client = None
        self._sink.transport = None
        self._parser.reset()
        self.controller.drop_all_links("host disconnected")
        log.info("HCI: host disconnected")

