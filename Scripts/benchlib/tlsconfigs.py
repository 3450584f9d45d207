"""TLS termination for the tls workloads: the certificates (made at bench time with `openssl req`)
and each load balancer's terminating configuration, with the same certificate and the same
ciphers everywhere (TLS 1.3: TLS_AES_128_GCM_SHA256; TLS 1.2: ECDHE with AES-128-GCM), tickets on.
Nothing here starts a load balancer (benchlib.lbstart does, through lbstart.lb_argv)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from benchlib.installs import NGINX_STREAM_MODULE
from benchlib.tlsload import SERVER_NAME

TLSLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tlsload.py")  # run as a script
CIPHERSUITES = "TLS_AES_128_GCM_SHA256"
CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
KEY_KINDS = {"ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
             "rsa": ["-newkey", "rsa:2048"]}


@dataclass
class Certificate:
    kind: str    # ecdsa | rsa
    cert: str    # PEM certificate (self-signed: also the client's CA file)
    key: str     # PEM key, unencrypted
    bundle: str  # certificate then key in one file (HAProxy's `crt`)


def make_certificate(kind: str, tmp: str) -> Certificate:
    """A fresh self-signed certificate for SERVER_NAME with a `kind` key, valid two days."""
    cert, key, bundle = (os.path.join(tmp, f"tls-{kind}.{ext}") for ext in ("crt", "key", "pem"))
    subprocess.run(["openssl", "req", "-x509", *KEY_KINDS[kind], "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={SERVER_NAME}", "-addext", f"subjectAltName=DNS:{SERVER_NAME}"],
                   check=True, capture_output=True, timeout=60)
    with open(bundle, "w") as out, open(cert) as c, open(key) as k:
        out.write(c.read() + k.read())
    return Certificate(kind, cert, key, bundle)


def haproxy_tls_config(plain: str, listen_port: int, cert: Certificate, bench_ciphers: bool = True) -> str:
    """HAProxy's plain `mode tcp` configuration (lbconfigs.haproxy_config) with its bind terminating
    TLS (`ssl crt`), with the bench's ciphers or (not `bench_ciphers`) HAProxy's defaults."""
    bind = f"    bind 127.0.0.1:{listen_port}\n"
    if bind not in plain:
        raise ValueError("unexpected HAProxy configuration")
    tls_global = (f"    ssl-default-bind-ciphers {CIPHERS}\n    ssl-default-bind-ciphersuites {CIPHERSUITES}\n"
                  f"    ssl-default-bind-options ssl-min-ver TLSv1.2\n")
    return plain.replace("global\n", "global\n" + (tls_global if bench_ciphers else ""), 1).replace(
        bind, f"    bind 127.0.0.1:{listen_port} ssl crt {cert.bundle}\n")


def nginx_tls_config(plain: str, listen_port: int, cert: Certificate) -> str:
    """nginx's plain `stream` configuration (lbconfigs.nginx_stream_config) with its listener
    terminating TLS (`listen ... ssl`), the bench's ciphers, tickets and a session cache."""
    listen = f"        listen 127.0.0.1:{listen_port} backlog=4096;\n"
    if listen not in plain or NGINX_STREAM_MODULE not in plain:
        raise ValueError("unexpected nginx configuration")
    return plain.replace(listen, (
        f"        listen 127.0.0.1:{listen_port} ssl backlog=4096;\n"
        f"        ssl_certificate {cert.cert};\n"
        f"        ssl_certificate_key {cert.key};\n"
        f"        ssl_protocols TLSv1.2 TLSv1.3;\n"
        f"        ssl_ciphers {CIPHERS};\n"
        f"        ssl_conf_command Ciphersuites {CIPHERSUITES};\n"
        f"        ssl_session_cache shared:BENCHTLS:4m;\n"
        f"        ssl_session_tickets on;\n"))


def switchyard_tls_config(listen_port: int, backend_ports: list[int], cert: Certificate,
                          bench_ciphers: bool = True) -> str:
    """A Switchyard configuration file with one terminating service (its `tls:` key), for
    `switchyard serve --config FILE` beside the LB's flags; with the bench's ciphers or (not
    `bench_ciphers`) nothing but the certificate: every other TLS setting at its default."""
    backends = ", ".join(f'"127.0.0.1:{p}"' for p in backend_ports)
    settings = (f"""      ciphers: "{CIPHERS}"
      ciphersuites: "{CIPHERSUITES}"
      session-tickets: true
""" if bench_ciphers else "")
    return f"""services:
  bench:
    listen: ["127.0.0.1:{listen_port}"]
    backends: [{backends}]
    tls:
      certificates:
        - {{cert: {cert.cert}, key: {cert.key}}}
{settings}"""


def switchyard_tls_support(binary: str, tmp: str) -> str | None:
    """None when `binary` accepts a service's `tls:` key (check-config of a terminating service),
    else why not, in a sentence for the log and the report."""
    cert = make_certificate("ecdsa", tmp)
    path = os.path.join(tmp, "tls-probe.yaml")
    with open(path, "w") as f:
        f.write(switchyard_tls_config(1, [2], cert))
    res = subprocess.run([binary, "check-config", path], capture_output=True, text=True, timeout=60)
    if res.returncode == 0:
        return None
    text = (res.stderr + res.stdout).strip()
    if "unknown key 'tls'" in text:
        return f"no TLS termination in this switchyard (unknown key 'tls'): {binary}"
    return f"{binary} refuses a tls: service: {text[-200:]}"
