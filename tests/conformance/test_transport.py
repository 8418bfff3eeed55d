"""§2.1: what the agent's Go transport needs from the agent face's TLS: a certificate whose SAN matches the host
string (Go ignores the CN), and no HTTP/2 unless the whole API is served over it."""

from __future__ import annotations

import socket

from luban import SIGNING_HEADERS, Agent, acknowledged, trust

from cloudassist.testing import LiveServer


def handshake(server: LiveServer, alpn: list[str] | None = None) -> tuple[dict, str | None]:
    context = trust(server)
    if alpn:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", server.agent_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.getpeercert(), tls.selected_alpn_protocol()


def test_the_certificate_names_127_0_0_1_and_localhost_in_its_san(server: LiveServer) -> None:
    """ALIYUN_ASSIST_SERVER_HOST was tested as `127.0.0.1:<port>` and `localhost:<port>`; Go checks only the
    subjectAltName, so the agent face's certificate (chained to <data_dir>/ca.pem) carries both."""
    cert, _ = handshake(server)
    names = set(cert.get("subjectAltName", ()))
    assert ("IP Address", "127.0.0.1") in names, names
    assert ("DNS", "localhost") in names, names


def test_http2_is_not_negotiated_for_an_http1_only_api(server: LiveServer) -> None:
    """The agent's transport offers `h2` in ALPN (ForceAttemptHTTP2) and uses HTTP/2 when the server picks it;
    the agent face speaks HTTP/1.1 only (h11), so it must not select h2."""
    _, selected = handshake(server, ["h2", "http/1.1"])
    assert selected in (None, "http/1.1"), selected


def test_the_replayed_requests_carry_the_captured_header_set(agent: Agent) -> None:
    """The harness itself: a signed GET and an empty POST carry exactly Host, User-Agent `linux_<arch>/2.2.3.578`,
    Content-Type, the four X-Acs-* headers in Go's canonical casing and `Accept-Encoding: gzip` (plus
    Content-Length 0 on the POST), and nothing httpx would add of its own (no Accept, no Connection)."""
    beat = agent.heartbeat()
    acknowledged(beat)
    listing = agent.task_list("startup")
    acknowledged(listing)
    expected = ["Host", "User-Agent", "Content-Type", *SIGNING_HEADERS, "Accept-Encoding"]
    assert [k.decode() for k, _ in beat.request.headers.raw] == expected
    assert sorted(k.decode() for k, _ in listing.request.headers.raw) == sorted([*expected, "Content-Length"])
    assert beat.request.headers["User-Agent"] == "linux_amd64/2.2.3.578"
    assert listing.request.headers["Content-Length"] == "0"
    assert listing.request.headers["Accept-Encoding"] == "gzip"


def test_an_agent_that_hangs_up_mid_body_is_not_an_error(server: LiveServer, agent: Agent) -> None:
    """An agent shutting down may close its connection while a report's body is on the wire. The agent face
    drops that request quietly (no traceback in the log) and goes on answering the agent's next request."""
    headers = "".join(f"{name}: {value}\r\n" for name, value in agent.sign().items())
    request = (
        f"POST /luban/api/v1/task/finish?taskId=t-gone&invokeVersion=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        "Content-Type: text/plain\r\nContent-Length: 4096\r\n\r\npartial output"
    )
    with socket.create_connection(("127.0.0.1", server.agent_port), timeout=10) as raw, \
            trust(server).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(request.encode())
    acknowledged(agent.heartbeat())
    assert "ClientDisconnect" not in server.log()
    assert "Traceback" not in server.log()
