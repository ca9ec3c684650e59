/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * A tiny HTTPS server on a thread for tests: requires a client certificate signed by the given
 * CA and answers every request with the client certificate's subject CN, then closes.
 */
#include <stdbool.h>

typedef struct TlsServer TlsServer;

/* tls_server_start() - listen on 127.0.0.1 (free port); NULL on failure. PEM strings borrowed. */
TlsServer *tls_server_start(const char *cert_pem, const char *key_pem, const char *ca_pem);
int tls_server_port(const TlsServer *s);
/* tls_server_handshakes() - completed handshakes so far (thread-safe). */
int tls_server_handshakes(TlsServer *s);
void tls_server_stop(TlsServer *s);
