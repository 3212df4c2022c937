"""`batch` on a real Dask cluster started from the command line on 127.0.0.1: relative
session paths, a worker killed mid-batch, and a TLS scheduler with certificates made here."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_batch import _record

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 150  # test_batch's recordings
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           DASK_DISTRIBUTED__WORKER__DAEMON="False")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cluster:
    """``dask scheduler`` and ``dask worker`` processes, each from the command line, in a
    folder of their own (so a relative path means nothing to them); all killed at the end."""

    def __init__(self, tmp: Path, tls: list[str] = ()):
        self.tmp, self.tls, self.procs = tmp, list(tls), []
        self.protocol = "tls" if tls else "tcp"
        self.port = _free_port()
        self.address = f"{self.protocol}://127.0.0.1:{self.port}"
        self.cwd = tmp / "elsewhere"
        self.cwd.mkdir(exist_ok=True)

    def _start(self, *args) -> subprocess.Popen:
        log = open(self.tmp / f"dask-{len(self.procs)}.log", "w")
        p = subprocess.Popen(["dask", *args, *self.tls], cwd=self.cwd, env=ENV, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, workers: int) -> list[subprocess.Popen]:
        self._start("scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                    "--protocol", self.protocol, "--no-dashboard")
        deadline = time.monotonic() + 60
        while True:  # the scheduler listens
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (self.tmp / "dask-0.log").read_text()
                time.sleep(0.2)
        return [self._start("worker", self.address, "--nthreads", "1", "--no-nanny",
                            "--no-dashboard", "--host", "127.0.0.1") for _ in range(workers)]

    def wait_for_workers(self, n: int, security=None) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s", security=security) as c:
            c.wait_for_workers(n, timeout=120)

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(**kwargs):
        made.append(_Cluster(tmp_path, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``root/rec/S1``, ``root/rec/S2``: two recorded sessions, named relative to ``root``."""
    root = tmp_path_factory.mktemp("study")
    (root / "rec").mkdir()
    for seed, name in ((3, "S1"), (4, "S2")):
        _record(root / "rec" / name, seed)
    return root


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]


def test_relative_paths_and_a_worker_killed_mid_batch(cluster, study):
    c = cluster()
    workers = c.start(2)
    c.wait_for_workers(2)
    out = study / "out-kill"
    # small chunks: many tasks, so the killed worker holds some when it dies
    batch = subprocess.Popen(
        [sys.executable, "-m", "nirf_overlay", "batch", "rec/S1", "rec/S2", "rec/missing",
         "--out", str(out), "--scheduler", c.address, "--chunk-frames", "25", "--no-progress"],
        cwd=study, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from distributed import Client

    victim = workers[0]
    with Client(c.address, timeout="30s") as watch:
        deadline = time.monotonic() + 300
        while not any(watch.processing().values()):  # wait on the batch's tasks, not a sleep
            assert batch.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    stdout, stderr = batch.communicate(timeout=600)
    assert batch.returncode == 0, stderr
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith("batch: 2/3 recordings"), summary
    assert "on 1 workers (1 lost during the run)" in summary, summary
    assert stderr.count("rec/missing") == 1, stderr  # warned once, not twice
    assert str(study) not in stderr  # named as given, not with the folders above it
    summary_csv = (out / "summary.csv").read_text()
    # by the folder's own name, as the outputs are (privacy.py; --keep-paths: as given)
    assert "missing" in summary_csv and "rec/" not in summary_csv and str(study) not in summary_csv
    for name in ("S1", "S2"):  # complete: every frame once, in order
        rows = _rows(out / name / "metrics.csv")
        assert [int(r.split(",")[0]) for r in rows] == list(range(FRAMES)), name


def test_a_path_no_worker_can_see_is_named_as_such(cluster, study, tmp_path):
    from nirf_overlay.batch.chunks import plan_chunks, process_chunk

    chunk = plan_chunks(str(tmp_path / "only-on-the-client"), 10, 10, 0)[0]
    result = process_chunk(chunk, {}, None)
    assert "only-on-the-client: not visible on worker" in result.error


def _make_certificates(folder: Path) -> list[str]:
    """A CA, and one certificate it signs for 127.0.0.1 (scheduler, workers and client)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("nirf test CA")).issuer_name(name("nirf test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return [str(folder / n) for n in ("ca.pem", "cert.pem", "key.pem")]


def test_a_tls_scheduler_with_certificates_made_here(cluster, study, tmp_path):
    from distributed.security import Security

    ca, cert, key = _make_certificates(tmp_path)
    tls = ["--tls-ca-file", ca, "--tls-cert", cert, "--tls-key", key]
    c = cluster(tls=tls)
    c.start(1)
    c.wait_for_workers(1, Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,
                                   require_encryption=True))
    out = study / "out-tls"
    p = subprocess.run([sys.executable, "-m", "nirf_overlay", "batch", "rec/S1", "--out", str(out),
                        "--scheduler", c.address, *tls, "--no-progress"],
                       cwd=study, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1].startswith("batch: 1/1 recordings"), p.stdout
    assert len(_rows(out / "S1" / "metrics.csv")) == FRAMES
    # the options are refused, in one line, where they cannot apply
    q = subprocess.run([sys.executable, "-m", "nirf_overlay", "batch", "rec/S1", "--out",
                        str(study / "out-x"), "--tls-ca-file", ca, "--tls-cert", cert],
                       cwd=study, env=ENV, capture_output=True, text=True, timeout=120)
    assert q.returncode == 2 and q.stderr.strip().endswith(
        "--tls-ca-file: only for a TLS scheduler (--scheduler tls://HOST:PORT)"), q.stderr
