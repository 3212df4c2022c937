"""Dask's security settings for ``batch --scheduler tls://...``.

With ``--tls-ca-file/--tls-cert/--tls-key`` the client uses those files
(:class:`distributed.security.Security`, encryption required); without them
Dask's own configuration applies (``distributed.comm.tls.ca-file``,
``...client.cert``, ``...client.key``, e.g. in ``~/.config/dask/distributed.yaml``
or ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``), which is what ``Client`` reads by
itself.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from ..errors import NirfError

__all__ = ["tls_security"]

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


def tls_security(scheduler: Optional[str], *, ca_file: Optional[str] = None,
                 cert: Optional[str] = None, key: Optional[str] = None):
    """A :class:`~distributed.security.Security` for the TLS options given, or None
    (Dask's configuration); NirfError names an option that cannot be used."""
    given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    named = {opt: path for opt, path in given.items() if path}
    if not named:
        return None
    if not scheduler or not scheduler.startswith("tls://"):
        opt = next(iter(named))
        raise NirfError(f"{opt}: only for a TLS scheduler (--scheduler tls://HOST:PORT)")
    for opt, path in named.items():
        if os.path.isdir(path):
            raise NirfError(f"{opt} {path}: is a directory; give the PEM file")
        if not os.path.isfile(path):
            raise NirfError(f"{opt} {path}: no such file; give the path of its PEM file")
    if not ca_file or not cert:
        missing = "--tls-ca-file" if not ca_file else "--tls-cert"
        raise NirfError(f"{missing}: missing (a TLS client needs the CA and its certificate)")
    _check_pem_files(ca_file, cert, key)
    from distributed.security import Security

    return Security(tls_ca_file=os.path.abspath(ca_file),
                    tls_client_cert=os.path.abspath(cert),
                    tls_client_key=os.path.abspath(key) if key else None,
                    require_encryption=True)


def _check_pem_files(ca_file: str, cert: str, key: Optional[str]) -> None:
    """Load the files as the TLS connection will, now: an empty, cut or garbage file is
    named by its option here, not as "cannot connect" to a scheduler that is fine."""
    import ssl

    def bad(opt, path, problem):
        return NirfError(f"{opt} {path}: {problem}; give the PEM file the cluster's CA made")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=ca_file)
    except (ssl.SSLError, OSError, UnicodeError, ValueError) as e:
        raise bad("--tls-ca-file", ca_file, f"not a usable CA certificate ({_why(e)})") from None
    try:
        with open(cert, encoding="ascii") as f:
            first = _PEM_CERT.search(f.read())  # the first certificate, whole
        if first is None:
            raise ValueError("no whole BEGIN/END CERTIFICATE block")
        ssl.PEM_cert_to_DER_cert(first.group(0))
    except (OSError, UnicodeError, ValueError) as e:
        raise bad("--tls-cert", cert, f"not a PEM certificate ({_why(e)})") from None
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as e:
        opt, path = ("--tls-key", key) if key else ("--tls-cert", cert)
        raise bad(opt, path, f"no private key that matches --tls-cert ({_why(e)})") from None


def _why(e: Exception) -> str:
    import ssl

    if isinstance(e, ssl.SSLError) and e.reason:
        return e.reason
    return str(e) if isinstance(e, ValueError) and not isinstance(e, UnicodeError) \
        else e.__class__.__name__
