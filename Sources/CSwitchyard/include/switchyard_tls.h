// OpenSSL 3 for Switchyard's TLS (health checks over TLS; later TLS termination): the headers,
// and the few function-like macros Swift cannot import, as one-line inline functions.
// No logic lives here; the sessions are in SwitchyardIO/TLS.
#ifndef SWITCHYARD_TLS_H
#define SWITCHYARD_TLS_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

// SSL_set_tlsext_host_name(3): the SNI a client sends.
static inline int swy_ssl_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

// BIO_set_mem_eof_return(3): what reading an empty memory BIO returns; 0 makes it an end of
// stream (the peer closed), instead of the default -1 with "retry".
static inline int swy_bio_set_mem_eof_return(BIO *bio, int value) {
    return (int)BIO_set_mem_eof_return(bio, value);
}

// SSL_CTX_set_min_proto_version(3).
static inline int swy_ssl_ctx_set_min_proto_version(SSL_CTX *context, int version) {
    return (int)SSL_CTX_set_min_proto_version(context, version);
}

#endif
