// OpenSSL 3 for Switchyard's TLS (health checks over TLS, TLS termination): the headers,
// and the few function-like macros Swift cannot import, as one-line inline functions.
// No logic lives here; the sessions are in SwitchyardIO/TLS.
#ifndef SWITCHYARD_TLS_H
#define SWITCHYARD_TLS_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>

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

// SSL_CTX_set_tlsext_servername_callback(3) and its argument: the server name callback that
// picks a terminating service's certificate by SNI.
static inline void swy_ssl_ctx_set_servername_callback(SSL_CTX *context, int (*callback)(SSL *, int *, void *), void *argument) {
    SSL_CTX_set_tlsext_servername_callback(context, callback);
    SSL_CTX_set_tlsext_servername_arg(context, argument);
}

// SSL_CTX_set_options(3) bits, which OpenSSL 3 writes as function-like macros.
static const uint64_t SWY_SSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t SWY_SSL_OP_CIPHER_SERVER_PREFERENCE = SSL_OP_CIPHER_SERVER_PREFERENCE;
static const uint64_t SWY_SSL_OP_NO_TICKET = SSL_OP_NO_TICKET;
static const uint64_t SWY_SSL_OP_IGNORE_UNEXPECTED_EOF = SSL_OP_IGNORE_UNEXPECTED_EOF;

// SSL_CTX_set_session_cache_mode(3).
static inline long swy_ssl_ctx_set_session_cache_mode(SSL_CTX *context, long mode) {
    return SSL_CTX_set_session_cache_mode(context, mode);
}

// SSL_CTX_get0_chain_certs(3): the chain loaded after the leaf, in file order.
static inline int swy_ssl_ctx_get0_chain_certs(SSL_CTX *context, STACK_OF(X509) **chain) {
    return (int)SSL_CTX_get0_chain_certs(context, chain);
}

// The DNS name a subjectAltName entry holds (its length in *length), or NULL for another kind.
static inline const unsigned char *swy_general_name_dns(const GENERAL_NAME *name, int *length) {
    if (name->type != GEN_DNS) return NULL;
    *length = ASN1_STRING_length(name->d.dNSName);
    return ASN1_STRING_get0_data(name->d.dNSName);
}

// XN_FLAG_RFC2253 (X509_NAME_print_ex(3)): a name as `CN=a,O=b`, built of several macros.
static inline unsigned long swy_xn_flag_rfc2253(void) { return XN_FLAG_RFC2253; }

// The ticket key callback's MAC (SSL_CTX_set_tlsext_ticket_key_evp_cb(3)): HMAC-SHA256 with
// `key`, set through an OSSL_PARAM array, which Swift cannot build from the macros.
static inline int swy_ticket_mac_init(EVP_MAC_CTX *mac, const unsigned char *key, size_t length) {
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, length);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(mac, params);
}

#endif
