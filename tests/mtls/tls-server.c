/* SPDX-License-Identifier: Apache-2.0 */
/* Test HTTPS server requiring client certificates; see tls-server.h. */
#include "tls-server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct TlsServer {
    SSL_CTX *ctx;
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int handshakes;
};

static void serve_one(TlsServer *s, int cfd)
{
    struct timeval tv = {10, 0};
    (void)setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(s->ctx);
    if (!ssl)
        return;
    SSL_set_fd(ssl, cfd);
    if (SSL_accept(ssl) == 1) {
        atomic_fetch_add(&s->handshakes, 1);
        char req[4096];
        size_t got = 0;
        while (got < sizeof(req) - 1) {
            int n = SSL_read(ssl, req + got, (int)(sizeof(req) - 1 - got));
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        char cn[256] = "none";
        X509 *peer = SSL_get1_peer_certificate(ssl);
        if (peer) {
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
            X509_free(peer);
        }
        char resp[512];
        int len = snprintf(resp, sizeof(resp),
                           "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                           strlen(cn), cn);
        (void)SSL_write(ssl, resp, len);
        (void)SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
}

static void *run(void *ud)
{
    TlsServer *s = ud;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int cfd = accept(s->fd, NULL, NULL);
        if (cfd < 0)
            continue;
        serve_one(s, cfd);
        close(cfd);
    }
    ERR_clear_error();
    OPENSSL_thread_stop();
    return NULL;
}

TlsServer *tls_server_start(const char *cert_pem, const char *key_pem, const char *ca_pem)
{
    TlsServer *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fd = -1;
    s->ctx = SSL_CTX_new(TLS_server_method());
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1),
        *ab = BIO_new_mem_buf(ca_pem, -1);
    X509 *cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    X509 *ca = PEM_read_bio_X509(ab, NULL, NULL, NULL);
    BIO_free(cb);
    BIO_free(kb);
    BIO_free(ab);
    bool ok = s->ctx && cert && key && ca && SSL_CTX_use_certificate(s->ctx, cert) == 1 &&
              SSL_CTX_use_PrivateKey(s->ctx, key) == 1 &&
              X509_STORE_add_cert(SSL_CTX_get_cert_store(s->ctx), ca) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_free(ca);
    if (!ok)
        goto fail;
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* No session resumption: every connection must present its certificate afresh. */
    SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(s->ctx, 0);

    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 16) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &al) < 0)
        goto fail;
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->thread, NULL, run, s) != 0)
        goto fail;
    return s;
fail:
    if (s->fd >= 0)
        close(s->fd);
    SSL_CTX_free(s->ctx);
    free(s);
    ERR_clear_error();
    return NULL;
}

int tls_server_port(const TlsServer *s)
{
    return s->port;
}

int tls_server_handshakes(TlsServer *s)
{
    return atomic_load(&s->handshakes);
}

void tls_server_stop(TlsServer *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
    SSL_CTX_free(s->ctx);
    free(s);
}
