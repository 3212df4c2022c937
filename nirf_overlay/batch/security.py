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
from typing import Optional

from ..errors import NirfError

__all__ = ["tls_security"]


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
        if not os.path.isfile(path):
            raise NirfError(f"{opt} {path}: no such file; give the path of its PEM file")
    if not ca_file or not cert:
        missing = "--tls-ca-file" if not ca_file else "--tls-cert"
        raise NirfError(f"{missing}: missing (a TLS client needs the CA and its certificate)")
    from distributed.security import Security

    return Security(tls_ca_file=os.path.abspath(ca_file),
                    tls_client_cert=os.path.abspath(cert),
                    tls_client_key=os.path.abspath(key) if key else None,
                    require_encryption=True)
