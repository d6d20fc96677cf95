"""How the Python package reaches an lrtune coordinator, as the CLI does.

    conn = lrtune.connect()                     # embedded: `lrtune serve`
    conn = lrtune.connect("host:50051", token_file="tok", tls_ca="ca.pem")
    conn.stub.GetJob(request, metadata=conn.metadata)

server: "HOST:PORT" or "unix:/path" (else $LRTUNE_SERVER; neither: the
embedded service, lrtune/embedded.py). token or token_file (its first line,
as --token-file) is sent as `authorization: Bearer <token>`. tls_ca (else
$LRTUNE_TLS_CA), a PEM file, makes the channel TLS; tls_server_name
overrides the name checked in the server's certificate (--tls-server-name).
"""

import dataclasses
import os
from typing import Any, Optional, Tuple

import grpc

from lrtune.v1 import lrtune_pb2_grpc

_MAX_MESSAGE = 64 << 20  # the server's default request limit


@dataclasses.dataclass
class Connection:
    """A channel to the LrTune service: `stub`, `metadata` (pass with every
    call), `target`, and whether it is the embedded service."""
    target: str
    channel: Any
    stub: Any
    metadata: Tuple
    embedded: bool
    # The embedded service's dashboard (connect(ui=True)); else None.
    dashboard_url: Optional[str] = None

    def dashboard_page(self, job_id: str) -> Optional[str]:
        """The dashboard's address of `job_id`'s page, or None."""
        if self.dashboard_url is None:
            return None
        base, _, rest = self.dashboard_url.partition("/#/")
        token = rest.partition("?")[2]
        return f"{base}/#/jobs/{job_id}?{token}"

    def close(self):
        self.channel.close()


def _read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
    except OSError as e:
        raise ValueError(f"token_file {path!r} cannot be read: {e.strerror}") from None
    if not token:
        raise ValueError(f"token_file {path!r}: its first line is empty")
    return token


def connect(server: Optional[str] = None, *, token: Optional[str] = None,
            token_file: Optional[str] = None, tls_ca: Optional[str] = None,
            tls_server_name: Optional[str] = None,
            db: Optional[str] = None, ui: bool = False) -> Connection:
    """A Connection to `server`, or to this process's embedded service
    (started on first use; `db` is its job store, default the CLI's; `ui`
    serves its web dashboard on 127.0.0.1, at Connection.dashboard_url).
    With `ui`, a store that another process's embedded service holds
    without a dashboard raises RuntimeError at once, naming it."""
    server = server or os.environ.get("LRTUNE_SERVER") or None
    if ui and server is not None:
        raise ValueError("ui serves the embedded service's dashboard; with a "
                         "server, open the coordinator's "
                         "(lrtune-server --dashboard-listen)")
    if token is None and token_file:
        token = _read_token_file(token_file)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    options = [("grpc.max_send_message_length", _MAX_MESSAGE),
               ("grpc.max_receive_message_length", _MAX_MESSAGE),
               # A restarted coordinator is found again within a second.
               ("grpc.initial_reconnect_backoff_ms", 100),
               ("grpc.max_reconnect_backoff_ms", 1000)]
    if server is None:
        from lrtune import embedded
        service = embedded.shared_service(db, ui)
        channel = grpc.insecure_channel(service.target, options)
        return Connection(service.target, channel,
                          lrtune_pb2_grpc.LrTuneStub(channel), metadata, True,
                          service.dashboard_url)
    tls_ca = tls_ca or os.environ.get("LRTUNE_TLS_CA") or None
    if tls_ca:
        try:
            with open(tls_ca, "rb") as f:
                ca = f.read()
        except OSError as e:
            raise ValueError(f"tls_ca {tls_ca!r} cannot be read: {e.strerror}") from None
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        channel = grpc.secure_channel(
            server, grpc.ssl_channel_credentials(root_certificates=ca), options)
    else:
        if tls_server_name:
            raise ValueError("tls_server_name needs a CA (tls_ca or LRTUNE_TLS_CA)")
        channel = grpc.insecure_channel(server, options)
    return Connection(server, channel, lrtune_pb2_grpc.LrTuneStub(channel),
                      metadata, False)
