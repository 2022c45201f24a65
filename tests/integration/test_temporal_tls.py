"""Temporal over TLS: the ``OPENLINES_TEMPORAL_TLS*`` settings against a real frontend.

The dev server (``temporal server start-dev``) has no TLS flags, so these tests put a local
TLS-terminating proxy in front of it: the proxy holds a server certificate for
``temporal.openlines.test`` signed by a throwaway CA, demands a client certificate signed by
the same CA (mutual TLS), and pipes the decrypted bytes to the dev server's plain port.
``check`` (``openlines temporal check``), ``require`` and a whole ``openlines worker``
process then talk to Temporal through it.

What cannot be tested here:

- API-key authentication as Temporal Cloud does it. The dev server ignores the key, so no
  test can tell a good key from a bad one. The key reaches the SDK as
  ``Client.connect(api_key=...)`` (``core.temporal.connect``), which sends it on every call
  as the ``Authorization: Bearer <key>`` header; only ``tls_config``'s part (a key turns TLS
  on, with the system's CAs, as Temporal Cloud needs) is checked, as a unit.
- TLS with the system's CAs (``OPENLINES_TEMPORAL_TLS=true`` and no CA file): that needs a
  frontend with a publicly trusted certificate.
"""

import asyncio
import contextlib
import datetime
import ipaddress
import os
import signal
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr, ValidationError
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from core import temporal as core_temporal
from core.config import Settings
from core.local_http import free_port
from core.temporal import tls_config
from core.temporal_check import TemporalNotReady, check, require

SERVER_NAME = "temporal.openlines.test"
CLIENT_NAME = "openlines-worker"
PROJECT = Path(__file__).resolve().parents[2]
CALL_TIMEOUT_S = 5.0


# --- a throwaway PKI --------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """PEM files: our CA, the proxy's server pair, the client pair, and a CA that signed
    neither."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """A certificate for ``key``, signed by ``issuer`` (self-signed without one)."""
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), False
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signing_key, hashes.SHA256())


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing,
        crl_sign=signing,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(
        name,
        key,
        None,
        [(x509.BasicConstraints(ca=True, path_length=0), True), (_key_usage(signing=True), True)],
    )
    return cert, key


def _leaf(
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(
        name,
        key,
        issuer,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(signing=False), True),
            (x509.ExtendedKeyUsage([usage]), False),
            (x509.SubjectAlternativeName(alt_names), False),
        ],
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _ca("openlines test CA")
    server = _leaf(
        SERVER_NAME,
        ca,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = _leaf(CLIENT_NAME, ca, ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(CLIENT_NAME)])
    other_ca = _ca("some other CA")
    return Pki(
        ca=_write_cert(ca[0], folder / "ca.pem"),
        server_cert=_write_cert(server[0], folder / "server.pem"),
        server_key=_write_key(server[1], folder / "server-key.pem"),
        client_cert=_write_cert(client[0], folder / "client.pem"),
        client_key=_write_key(client[1], folder / "client-key.pem"),
        other_ca=_write_cert(other_ca[0], folder / "other-ca.pem"),
    )


# --- the TLS-terminating proxy ----------------------------------------------------------


class TlsProxy:
    """Accepts mutual TLS (ALPN ``h2``, a client certificate from ``ca`` required) on a free
    loopback port and pipes the plain bytes to ``upstream`` (``host:port``)."""

    def __init__(self, pki: Pki, upstream: str) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.load_verify_locations(cafile=pki.ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.set_alpn_protocols(["h2"])  # gRPC clients insist on HTTP/2
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.client_names: list[str] = []  # common names of the certificates clients showed
        self._connections: set[asyncio.Task[None]] = set()
        self._streams: set[asyncio.StreamWriter] = set()  # both ends of open connections
        self._server: asyncio.Server | None = None
        self.address = ""

    async def __aenter__(self) -> "TlsProxy":
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.context, ssl_handshake_timeout=5
        )
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        """Stop listening and end every connection by closing its sockets: the pipes see
        the end of their streams and return (cancelling them instead makes Python 3.11's
        asyncio.streams log the CancelledError)."""
        assert self._server is not None
        self._server.close()
        for stream in self._streams:
            stream.close()
        if self._connections:
            _done, stuck = await asyncio.wait(self._connections, timeout=5)
            for connection in stuck:
                connection.cancel()
        await self._server.wait_closed()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._streams.add(client_out)
        try:
            peer = client_out.get_extra_info("peercert") or {}
            for rdn in peer.get("subject", ()):
                self.client_names += [value for key, value in rdn if key == "commonName"]
            try:
                server_in, server_out = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            self._streams.add(server_out)
            try:
                await asyncio.gather(_pipe(client_in, server_out), _pipe(server_in, client_out))
            finally:
                server_out.close()
                self._streams.discard(server_out)
        finally:
            client_out.close()
            self._streams.discard(client_out)
            self._connections.discard(task)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until either side ends, then close the sink (TLS has no half-close here)."""
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        sink.close()


@pytest.fixture
async def proxy(pki: Pki, temporal: WorkflowEnvironment) -> AsyncIterator[TlsProxy]:
    """The TLS proxy in front of this session's dev server."""
    async with TlsProxy(pki, temporal.client.service_client.config.target_host) as running:
        yield running


# --- settings ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_temporal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings these tests build come from their arguments, not the caller's
    ``OPENLINES_TEMPORAL_*`` variables."""
    for name in list(os.environ):
        if name.startswith("OPENLINES_TEMPORAL"):
            monkeypatch.delenv(name)


def tls_settings(pki: Pki, address: str, **overrides: Any) -> Settings:
    """Mutual TLS to ``address`` as a deployment would configure it; ``overrides`` change
    or (as None) drop a setting."""
    values: dict[str, Any] = {
        "temporal_address": address,
        "temporal_namespace": "default",
        "temporal_tls_ca": pki.ca,
        "temporal_tls_cert": pki.client_cert,
        "temporal_tls_key": pki.client_key,
        "temporal_tls_server_name": SERVER_NAME,
        "temporal_call_timeout": CALL_TIMEOUT_S,
    }
    values.update(overrides)
    return Settings(**{name: value for name, value in values.items() if value is not None})


async def timed_check(settings: Settings) -> tuple[list[str], float]:
    """The check's problems, and the seconds it took."""
    started = time.monotonic()
    _client, report = await check(settings)
    return report.problems, time.monotonic() - started


def assert_unreachable(problems: list[str], settings: Settings, reason: str = "") -> None:
    """One problem: Temporal cannot be reached, because of ``reason`` (the SDK's words), and
    the message points at the TLS settings."""
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"cannot reach Temporal at {settings.temporal_address}: ")
    assert reason in problems[0]
    settings_named = "OPENLINES_TEMPORAL_TLS / _TLS_CA / _TLS_CERT / _TLS_KEY / _TLS_SERVER_NAME"
    assert settings_named in problems[0]


# --- check and require through the proxy ------------------------------------------------


async def test_check_passes_over_mutual_tls(pki: Pki, proxy: TlsProxy) -> None:
    settings = tls_settings(pki, proxy.address)

    client, report = await check(settings)

    assert report.problems == []
    assert report.notes == []  # the search attributes were listed, over the same channel
    assert client is not None
    assert proxy.client_names and set(proxy.client_names) == {CLIENT_NAME}
    assert await require(settings) is not None


async def test_without_a_server_name_the_address_host_is_verified(
    pki: Pki, proxy: TlsProxy
) -> None:
    """The server certificate also names 127.0.0.1, the host of the address."""
    settings = tls_settings(pki, proxy.address, temporal_tls_server_name=None)

    problems, _took = await timed_check(settings)

    assert problems == []
    assert proxy.client_names


async def test_no_client_certificate_is_a_problem(pki: Pki, proxy: TlsProxy) -> None:
    settings = tls_settings(pki, proxy.address, temporal_tls_cert=None, temporal_tls_key=None)

    problems, took = await timed_check(settings)

    assert_unreachable(problems, settings)
    assert took < CALL_TIMEOUT_S + 2
    assert proxy.client_names == []
    with pytest.raises(TemporalNotReady) as not_ready:
        await require(settings)
    assert str(not_ready.value).startswith(f"cannot reach Temporal at {proxy.address}: ")
    assert "OPENLINES_TEMPORAL_TLS / _TLS_CA / _TLS_CERT / _TLS_KEY" in str(not_ready.value)


async def test_a_ca_that_did_not_sign_the_server_is_a_problem(pki: Pki, proxy: TlsProxy) -> None:
    settings = tls_settings(pki, proxy.address, temporal_tls_ca=pki.other_ca)

    problems, took = await timed_check(settings)

    assert_unreachable(problems, settings, "UnknownIssuer")
    assert took < CALL_TIMEOUT_S + 2  # the call timeout ends it, if nothing sooner
    assert proxy.client_names == []


async def test_another_server_name_is_a_problem(pki: Pki, proxy: TlsProxy) -> None:
    settings = tls_settings(pki, proxy.address, temporal_tls_server_name="elsewhere.test")

    problems, _took = await timed_check(settings)

    assert_unreachable(problems, settings, "NotValidForName")


async def test_a_key_not_of_the_certificate_is_a_problem(pki: Pki, proxy: TlsProxy) -> None:
    settings = tls_settings(pki, proxy.address, temporal_tls_key=pki.server_key)

    problems, _took = await timed_check(settings)

    assert_unreachable(problems, settings, "KeyMismatch")
    assert proxy.client_names == []


async def test_plain_connection_to_the_tls_port_is_a_problem(pki: Pki, proxy: TlsProxy) -> None:
    settings = Settings(temporal_address=proxy.address, temporal_call_timeout=CALL_TIMEOUT_S)
    assert tls_config(settings) is False

    problems, took = await timed_check(settings)

    assert_unreachable(problems, settings)
    assert took < CALL_TIMEOUT_S + 2
    assert proxy.client_names == []


# --- the commands, as processes ---------------------------------------------------------


def command_env(pki: Pki, proxy: TlsProxy, folder: Path) -> dict[str, str]:
    """The environment of an ``openlines`` process: the caller's, minus its ``OPENLINES_*``
    settings, plus mutual TLS to the proxy and a SQLite file of its own."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OPENLINES_")}
    env.update(
        OPENLINES_TEMPORAL_ADDRESS=proxy.address,
        OPENLINES_TEMPORAL_NAMESPACE="default",
        OPENLINES_TEMPORAL_TLS_CA=str(pki.ca),
        OPENLINES_TEMPORAL_TLS_CERT=str(pki.client_cert),
        OPENLINES_TEMPORAL_TLS_KEY=str(pki.client_key),
        OPENLINES_TEMPORAL_TLS_SERVER_NAME=SERVER_NAME,
        OPENLINES_TEMPORAL_CALL_TIMEOUT=str(CALL_TIMEOUT_S),
        OPENLINES_DATA_DIR=str(folder / "data"),
        OPENLINES_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'o.db'}",
        OPENLINES_TASK_QUEUE=f"tls-{uuid.uuid4().hex[:8]}",
    )
    return env


async def openlines(env: dict[str, str], *args: str, timeout_s: float = 60) -> tuple[int, str]:
    """Run ``openlines <args>`` (as ``python -m cli``) without blocking the event loop the
    proxy runs on: (exit code, stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *args,
        cwd=PROJECT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, output.decode()


@contextlib.contextmanager
def killed_on_exit(process: asyncio.subprocess.Process) -> Iterator[None]:
    """Whatever happens in the block, the process does not outlive the test."""
    try:
        yield
    finally:
        if process.returncode is None:
            process.kill()


async def test_temporal_check_command_over_mutual_tls(
    pki: Pki, proxy: TlsProxy, tmp_path: Path
) -> None:
    env = command_env(pki, proxy, tmp_path)

    code, output = await openlines(env, "temporal", "check")
    # -6 (SIGABRT, "PyGILState_Release ... finalizing") after "ready for openlines" is the
    # SDK's runtime threads outliving the interpreter: temporalio/sdk-python#300.
    assert code == 0, f"exit {code}:\n{output}"
    assert f"Temporal at {proxy.address}, namespace default: ready for openlines" in output

    for name in ("OPENLINES_TEMPORAL_TLS_CERT", "OPENLINES_TEMPORAL_TLS_KEY"):
        del env[name]
    code, output = await openlines(env, "temporal", "check")
    assert code == 1, output
    assert f"problem: cannot reach Temporal at {proxy.address}" in output


async def test_worker_polls_through_mutual_tls_and_stops_on_sigterm(
    pki: Pki, proxy: TlsProxy, tmp_path: Path
) -> None:
    env = command_env(pki, proxy, tmp_path)
    port = free_port()
    env["OPENLINES_WORKER_PORT"] = str(port)
    code, output = await openlines(env, "migrate")
    assert code == 0, output

    log = tmp_path / "worker.log"
    with log.open("wb") as output_file:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "worker",
            cwd=PROJECT,
            env=env,
            stdout=output_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    with killed_on_exit(worker):
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                assert worker.returncode is None, log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    ready = await http.get(f"http://127.0.0.1:{port}/readyz")
                    if ready.status_code == 200:
                        break
                assert time.monotonic() < deadline, f"never ready; log:\n{log.read_text()}"
                await asyncio.sleep(0.1)
        assert set(proxy.client_names) == {CLIENT_NAME}  # it came through the proxy

        worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), 20)
        assert code == 0, log.read_text()


# --- tls_config and the settings, as units ----------------------------------------------


def test_tls_is_off_by_default() -> None:
    assert tls_config(Settings()) is False


def test_tls_flag_alone_uses_the_system_cas() -> None:
    assert tls_config(Settings(temporal_tls=True)) is True


def test_an_api_key_turns_tls_on_with_the_system_cas() -> None:
    assert tls_config(Settings(temporal_api_key=SecretStr("k"))) is True


def test_tls_files_are_read_into_the_config(pki: Pki) -> None:
    config = tls_config(tls_settings(pki, "temporal.example:7233"))

    assert config == TLSConfig(
        server_root_ca_cert=pki.ca.read_bytes(),
        client_cert=pki.client_cert.read_bytes(),
        client_private_key=pki.client_key.read_bytes(),
        domain=SERVER_NAME,
    )


def test_a_server_name_alone_turns_tls_on() -> None:
    assert tls_config(Settings(temporal_tls_server_name=SERVER_NAME)) == TLSConfig(
        domain=SERVER_NAME
    )


def test_a_certificate_without_its_key_is_refused(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="OPENLINES_TEMPORAL_TLS_CERT and"):
        Settings(temporal_tls_cert=pki.client_cert)
    with pytest.raises(ValidationError, match="OPENLINES_TEMPORAL_TLS_CERT and"):
        Settings(temporal_tls_key=pki.client_key)


def test_a_missing_tls_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is not a readable file"):
        Settings(temporal_tls_ca=tmp_path / "nowhere.pem")


async def test_an_api_key_is_given_to_the_client_with_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporal Cloud: the key goes to ``Client.connect`` (sent as ``Authorization: Bearer``)
    over TLS with the system's CAs."""
    seen: dict[str, Any] = {}

    async def connect(target_host: str, **options: Any) -> None:
        seen.update(options, target_host=target_host)

    monkeypatch.setattr(Client, "connect", connect)
    await core_temporal.connect(
        Settings(
            temporal_address="ns.acct.tmprl.cloud:7233", temporal_api_key=SecretStr("cloud-key")
        )
    )
    assert seen["target_host"] == "ns.acct.tmprl.cloud:7233"
    assert seen["api_key"] == "cloud-key"
    assert seen["tls"] is True
