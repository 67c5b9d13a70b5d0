"""A node's TLS settings: the contexts it listens and connects with, what each side requires,
and reloading the certificate files (SIGHUP).

One port serves clients and peers, so the listener tells TLS from plaintext by the first byte (a
TLS record starts with 0x16; a ringd frame with the high byte of a small length, 0x00). Whenever
the node has a certificate it accepts TLS; ``client_tls`` and ``internode_tls`` say whether a
plaintext hello of that role is still served (``off``, ``optional``) or refused
(``required``). A node connects to its peers over TLS unless ``internode_tls`` is ``off``, and
verifies them against ``tls_ca_file``; peers connecting with TLS present their certificate too.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringd.auth.tls import TLSConfigError, client_context, server_context
from ringd.protocol.errors import Unauthorized
from ringd.protocol.messages import PEER

log = logging.getLogger(__name__)

OFF, OPTIONAL, REQUIRED = "off", "optional", "required"
TLS_MODES = (OFF, OPTIONAL, REQUIRED)
TLS_RECORD = 0x16  # the first byte of a TLS handshake record


@dataclass
class NodeTLS:
    client_mode: str
    internode_mode: str
    cert: Path
    key: Path
    ca: Path | None
    server: ssl.SSLContext | None = None
    client: ssl.SSLContext | None = None

    @classmethod
    def from_config(cls, config: Any) -> NodeTLS | None:
        """The node's TLS, or None when it has no certificate; ``TLSConfigError`` on bad files."""
        if not config.tls_cert_file:
            return None
        tls = cls(
            config.client_tls,
            config.internode_tls,
            Path(config.tls_cert_file).expanduser(),
            Path(config.tls_key_file).expanduser(),
            Path(config.tls_ca_file).expanduser() if config.tls_ca_file else None,
        )
        tls.reload()
        return tls

    def reload(self) -> None:
        """Build the contexts from the files again (new connections use them); on an error the
        old ones stay and ``TLSConfigError`` says why."""
        server = server_context(self.cert, self.key, self.ca)
        if self.ca is not None:
            server.verify_mode = ssl.CERT_OPTIONAL  # peers present theirs; clients need not
        client = None
        if self.internode_mode != OFF and self.ca is not None:
            client = client_context(self.ca, self.cert, self.key)
        self.server, self.client = server, client

    def check_hello(self, role: str, over_tls: bool, peer_cert: bool) -> None:
        """``Unauthorized`` if a hello of ``role`` may not come the way it came."""
        if role == PEER:
            if self.internode_mode == REQUIRED and not over_tls:
                raise Unauthorized(
                    "this node requires TLS between nodes (internode_tls = required)"
                )
            if self.internode_mode == REQUIRED and not peer_cert:
                raise Unauthorized("this node requires peers to present a TLS certificate")
        elif self.client_mode == REQUIRED and not over_tls:
            raise Unauthorized(
                "this node requires TLS (client_tls = required); "
                "ringctl: --tls-ca FILE or RINGCTL_TLS_CA"
            )


__all__ = ["OFF", "OPTIONAL", "REQUIRED", "TLS_MODES", "TLS_RECORD", "NodeTLS", "TLSConfigError"]
