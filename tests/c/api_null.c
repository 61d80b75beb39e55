/*
 * api_null: every function of include/wsconn.h called with NULL pointers and
 * invalid arguments, checking the documented result codes (and that void
 * functions and NULL frees/releases do not crash).
 *
 * Sans-IO behaviours seen from C: freeing a session inside its own
 * on_message, feed from inside a callback (WSCONN_ERR_REENTRANT), a send
 * refused with WSCONN_ERR_FULL queueing nothing.
 *
 * Reactor API: bad IPs/ports/URLs/close codes/types/lengths on live objects,
 * state errors (start twice, start without fd, set_config after start...),
 * defer from this and from another thread, dispatch/release of the reactor
 * from inside a callback, a client and a server wsconn_t on one reactor
 * (bad values on open connections, then messages, then a clean close),
 * a connection released inside its own message callback, a connect to a
 * closed port, and a reactor released before its objects.
 *
 * tests/runtime_api_null.rs runs it (also built with ASan + UBSan) and checks
 * that it names every function the header declares.
 *
 * Prints "N passed, M failed"; exits 1 if anything failed.
 */
#include "wsconn.h"
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers: a client handshake and masked client frames.               */

static const char REQUEST[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

/* Appends a masked client frame to out; returns its length. */
static size_t client_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len) {
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    const uint8_t *p = payload;
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++) out[n++] = p[i] ^ mask[i % 4];
    return n;
}

/* Writes out everything a session queued (as if the socket took it all). */
static void drain_output(wsconn_session_t *s) {
    const uint8_t *out = NULL;
    size_t len;
    while ((len = wsconn_session_output(s, &out)) > 0) {
        if (wsconn_session_consume(s, len) != WSCONN_OK) break;
    }
}

/* A server session fed a valid handshake: open, its 101 response written out. */
static wsconn_session_t *open_server(const wsconn_config_t *cfg, const wsconn_session_callbacks_t *cb, void *arg) {
    wsconn_session_t *s = wsconn_session_server_new(cfg, cb, arg);
    CHECK(s != NULL);
    if (!s) return NULL;
    uint8_t req[sizeof REQUEST];
    memcpy(req, REQUEST, sizeof REQUEST - 1);
    CHECK_EQ(wsconn_session_feed(s, req, sizeof REQUEST - 1), WSCONN_OK);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_OPEN);
    drain_output(s);
    return s;
}

/* ------------------------------------------------------------------ */
/* Result codes, strerror, version.                                    */

static void test_strerror_version(void) {
    const char *unknown = wsconn_strerror(12345);
    CHECK(unknown != NULL);
    CHECK(wsconn_strerror(-1000) != NULL);
    CHECK(wsconn_strerror(INT32_MIN) != NULL);
    CHECK(wsconn_strerror(INT32_MAX) != NULL);
    CHECK(wsconn_strerror(WSCONN_OK) != NULL);
    /* Every defined code has its own description, not the unknown one. */
    for (int code = WSCONN_ERR_NULL; code >= WSCONN_ERR_STATE; code--) {
        const char *text = wsconn_strerror(code);
        CHECK(text != NULL && text[0] != '\0');
        if (text && unknown) CHECK(strcmp(text, unknown) != 0);
        for (int other = code - 1; other >= WSCONN_ERR_STATE; other--) {
            const char *t2 = wsconn_strerror(other);
            if (text && t2) CHECK(strcmp(text, t2) != 0);
        }
    }
    const char *v = wsconn_version();
    CHECK(v != NULL && v[0] >= '0' && v[0] <= '9');
}

/* ------------------------------------------------------------------ */
/* Config.                                                             */

static void test_config(void) {
    wsconn_config_free(NULL); /* no-op */

    CHECK_EQ(wsconn_config_set_max_frame_size(NULL, 1024), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_max_message_size(NULL, 1024), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_max_output(NULL, 1024), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_max_handshake_size(NULL, 1024), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_add_subprotocol(NULL, "chat"), WSCONN_ERR_NULL);

    wsconn_config_t *cfg = wsconn_config_new();
    CHECK(cfg != NULL);
    if (!cfg) return;

    CHECK_EQ(wsconn_config_set_max_frame_size(cfg, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_max_message_size(cfg, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_max_output(cfg, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_max_handshake_size(cfg, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_max_frame_size(cfg, 1), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_max_message_size(cfg, SIZE_MAX), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_max_output(cfg, 4096), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_max_handshake_size(cfg, 4096), WSCONN_OK);

    CHECK_EQ(wsconn_config_add_subprotocol(cfg, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_add_subprotocol(cfg, ""), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_subprotocol(cfg, "a b"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_subprotocol(cfg, "a,b"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_subprotocol(cfg, "a\r\nX: y"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_subprotocol(cfg, "\xff\xfe"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_subprotocol(cfg, "caf\xc3\xa9"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_subprotocol(cfg, "chat.v1"), WSCONN_OK);

    wsconn_config_free(cfg);
}

/* ------------------------------------------------------------------ */
/* The client's options and answers: NULL and bad arguments, defaults. */

static void test_client_null(wsconn_reactor_t *r) {
    CHECK_EQ(wsconn_config_add_header(NULL, "X-A", "1"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_proxy(NULL, "http://p:1"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_proxy_from_env(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_no_proxy(NULL, "x"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_max_redirects(NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_reconnect(NULL, 1, 2), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_add_header(NULL, "X-A", "1"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_handshake_status(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_proxy_status(NULL), WSCONN_ERR_NULL);
    CHECK(wsconn_response_header(NULL, "x", 0) == NULL);
    CHECK_EQ(wsconn_reconnect_delay(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_handshake_status(NULL), WSCONN_ERR_NULL);
    CHECK(wsconn_session_response_header(NULL, "x", 0) == NULL);

    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_config_add_header(cfg, NULL, "1"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_add_header(cfg, "X-A", NULL), WSCONN_ERR_NULL);
    const char *owned[] = {"Host", "upgrade", "Connection", "Sec-WebSocket-Key", "sec-websocket-version",
                           "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Content-Length",
                           "Transfer-Encoding", "", "Bad Name", "Bad:Name", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        CHECK_EQ(wsconn_config_add_header(cfg, owned[i], "x"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_header(cfg, "X-A", "1\r\nInjected: 1"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_header(cfg, "X-A", "1\n"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_header(cfg, "X-A", "\xff"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_header(cfg, "Origin", "https://x.example"), WSCONN_OK);
    CHECK_EQ(wsconn_config_add_header(cfg, "X-Empty", ""), WSCONN_OK);

    CHECK_EQ(wsconn_config_set_proxy(cfg, NULL), WSCONN_ERR_NULL);
    const char *bad_proxies[] = {"socks4://h:1", "ftp://h", "http://", "http://h:0", "http://h/x", "http://h x",
                                 "socks5://:p@h"};
    for (size_t i = 0; i < sizeof bad_proxies / sizeof bad_proxies[0]; i++)
        CHECK_EQ(wsconn_config_set_proxy(cfg, bad_proxies[i]), WSCONN_ERR_INVALID_ARGUMENT);
    const char *good_proxies[] = {"http://u:p@127.0.0.1:3128", "https://p", "socks5://[::1]:1080",
                                  "socks5h://u:p@p:1", "p:8080", ""};
    for (size_t i = 0; i < sizeof good_proxies / sizeof good_proxies[0]; i++)
        CHECK_EQ(wsconn_config_set_proxy(cfg, good_proxies[i]), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_proxy_from_env(cfg), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_no_proxy(cfg, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_no_proxy(cfg, "localhost,.example.com,10.0.0.0/8"), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_no_proxy(cfg, ""), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_max_redirects(cfg, 256), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_max_redirects(cfg, 5), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_reconnect(cfg, 0, 5), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_reconnect(cfg, 10, 5), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_reconnect(cfg, 5, 10), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_reconnect(cfg, 0, 0), WSCONN_OK);

    /* A connection not started: no answer, no retry; headers only before connect. */
    wsconn_t *c = wsconn_create(r);
    CHECK_EQ(wsconn_handshake_status(c), 0);
    CHECK_EQ(wsconn_proxy_status(c), 0);
    CHECK(wsconn_response_header(c, "upgrade", 0) == NULL);
    CHECK(wsconn_response_header(c, NULL, 0) == NULL);
    CHECK_EQ(wsconn_reconnect_delay(c), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_set_config(c, cfg), WSCONN_OK);
    CHECK_EQ(wsconn_add_header(c, NULL, "1"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_add_header(c, "Sec-WebSocket-Key", "x"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_add_header(c, "X-Token", "t"), WSCONN_OK);
    wsconn_release(c);
    wsconn_config_free(cfg);

    /* A sans-IO client: its headers go out; a refusal's status and headers come back. */
    cfg = wsconn_config_new();
    CHECK_EQ(wsconn_config_add_header(cfg, "Authorization", "Bearer t0k3n"), WSCONN_OK);
    wsconn_session_t *s = wsconn_session_client_new(cfg, "example.com", "/", NULL, NULL);
    wsconn_config_free(cfg);
    const uint8_t *out = NULL;
    size_t len = wsconn_session_output(s, &out);
    CHECK(len > 0 && memmem(out, len, "\r\nAuthorization: Bearer t0k3n\r\n", strlen("\r\nAuthorization: Bearer t0k3n\r\n")) != NULL);
    CHECK_EQ(wsconn_session_consume(s, len), WSCONN_OK);
    CHECK_EQ(wsconn_session_handshake_status(s), 0);
    uint8_t refusal[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nX-Why:  not you \r\n\r\n";
    CHECK_EQ(wsconn_session_feed(s, refusal, sizeof refusal - 1), WSCONN_ERR_HANDSHAKE_REFUSED);
    CHECK_EQ(wsconn_session_handshake_status(s), 403);
    const char *why = wsconn_session_response_header(s, "x-why", 0);
    CHECK(why != NULL && strcmp(why, "not you") == 0);
    CHECK(wsconn_session_response_header(s, "x-why", 1) == NULL);
    CHECK(wsconn_session_response_header(s, NULL, 0) == NULL);
    CHECK_EQ(wsconn_session_want_read(s), 0);
    wsconn_session_free(s);
    s = wsconn_session_server_new(NULL, NULL, NULL);
    CHECK_EQ(wsconn_session_handshake_status(s), 0);
    wsconn_session_free(s);
}

/* ------------------------------------------------------------------ */
/* Session functions with NULL and bad arguments.                      */

static void test_session_null(void) {
    const uint8_t *out = (const uint8_t *)"untouched";
    uint8_t byte = 0x81;

    wsconn_session_free(NULL); /* no-op */
    CHECK_EQ(wsconn_session_feed(NULL, &byte, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_feed(NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_feed_eof(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_output(NULL, &out), 0);
    CHECK_EQ(wsconn_session_output(NULL, NULL), 0);
    CHECK_EQ(wsconn_session_consume(NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_consume(NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_want_read(NULL), 0);
    CHECK_EQ(wsconn_session_want_write(NULL), 0);
    CHECK_EQ(wsconn_session_state(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_buffered_amount(NULL), 0);
    CHECK_EQ(wsconn_session_send(NULL, WSCONN_MSG_TEXT, (const uint8_t *)"hi", 2), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_send_fragment(NULL, WSCONN_MSG_BINARY, (const uint8_t *)"hi", 2, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_ping(NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_pong(NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_close(NULL, 1000, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_close(NULL, 1000, "bye"), WSCONN_ERR_NULL);

    /* Client constructor: NULL, empty, spaces, control characters, no '/', not UTF-8. */
    CHECK(wsconn_session_client_new(NULL, NULL, "/", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "example.com", NULL, NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "", "/", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "example.com", "", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "exa mple.com", "/", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "example.com", "/a b", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "example.com\r\nX: y", "/", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "example.com", "chat", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "\xff\xfe", "/", NULL, NULL) == NULL);
    CHECK(wsconn_session_client_new(NULL, "example.com", "/\xc3\x28", NULL, NULL) == NULL);

    /* NULL config and NULL callbacks are allowed. */
    wsconn_session_t *c = wsconn_session_client_new(NULL, "example.com:8080", "/chat?x=1", NULL, NULL);
    CHECK(c != NULL);
    CHECK_EQ(wsconn_session_state(c), WSCONN_STATE_CONNECTING);
    CHECK_EQ(wsconn_session_want_write(c), 1);
    CHECK(wsconn_session_output(c, &out) > 0);
    CHECK(memcmp(out, "GET /chat?x=1 HTTP/1.1\r\n", 24) == 0);
    CHECK_EQ(wsconn_session_output(c, NULL), 0);
    /* Not open yet: sends, pings, close refused; nothing queued by them. */
    size_t before = wsconn_session_buffered_amount(c);
    CHECK(before > 0);
    CHECK_EQ(wsconn_session_send(c, WSCONN_MSG_TEXT, (const uint8_t *)"hi", 2), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_session_send_fragment(c, WSCONN_MSG_TEXT, (const uint8_t *)"hi", 2, 0), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_session_ping(c, NULL, 0), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_session_pong(c, NULL, 0), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_session_close(c, 1000, NULL), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_session_buffered_amount(c), before);
    /* Consume more than is queued: refused. */
    CHECK_EQ(wsconn_session_consume(c, before + 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_consume(c, SIZE_MAX), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_buffered_amount(c), before);
    CHECK_EQ(wsconn_session_consume(c, 0), WSCONN_OK);
    wsconn_session_free(c);

    /* Server session: NULL data with a length, huge lengths. */
    wsconn_session_t *s = wsconn_session_server_new(NULL, NULL, NULL);
    CHECK(s != NULL);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_CONNECTING);
    CHECK_EQ(wsconn_session_want_read(s), 1);
    CHECK_EQ(wsconn_session_want_write(s), 0);
    CHECK_EQ(wsconn_session_feed(s, NULL, 5), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_feed(s, NULL, 0), WSCONN_OK);
    CHECK_EQ(wsconn_session_feed(s, &byte, SIZE_MAX), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_feed(s, &byte, (size_t)-1 / 2 + 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_CONNECTING);
    wsconn_session_free(s);

    /* A server fed garbage fails the handshake and queues an HTTP error. */
    s = wsconn_session_server_new(NULL, NULL, NULL);
    uint8_t junk[] = "NOT HTTP AT ALL\r\n\r\n";
    CHECK_EQ(wsconn_session_feed(s, junk, sizeof junk - 1), WSCONN_ERR_HANDSHAKE);
    CHECK(wsconn_session_output(s, &out) > 0 && memcmp(out, "HTTP/1.1 4", 10) == 0);
    CHECK_EQ(wsconn_session_want_read(s), 0);
    wsconn_session_free(s);

    /* A handshake over the configured size: 431. */
    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_config_set_max_handshake_size(cfg, 32), WSCONN_OK);
    s = wsconn_session_server_new(cfg, NULL, NULL);
    wsconn_config_free(cfg); /* not kept by the session */
    uint8_t req[sizeof REQUEST];
    memcpy(req, REQUEST, sizeof REQUEST - 1);
    CHECK_EQ(wsconn_session_feed(s, req, sizeof REQUEST - 1), WSCONN_ERR_HANDSHAKE_TOO_LARGE);
    CHECK(wsconn_session_output(s, &out) > 0 && memcmp(out, "HTTP/1.1 431", 12) == 0);
    wsconn_session_free(s);

    /* EOF before any close: WSCONN_ERR_EOF. */
    s = wsconn_session_server_new(NULL, NULL, NULL);
    CHECK_EQ(wsconn_session_feed_eof(s), WSCONN_ERR_EOF);
    CHECK_EQ(wsconn_session_want_read(s), 0);
    wsconn_session_free(s);
}

/* Bad values on an open session; none of them may queue anything. */
static void test_session_bad_values(void) {
    wsconn_session_t *s = open_server(NULL, NULL, NULL);
    if (!s) return;
    const uint8_t data[200] = {0};
    const uint8_t *bad_utf8 = (const uint8_t *)"\xc3\x28";
    char long_reason[125];
    memset(long_reason, 'r', 124);
    long_reason[124] = '\0';

    CHECK_EQ(wsconn_session_buffered_amount(s), 0);

    /* Message types. */
    CHECK_EQ(wsconn_session_send(s, 0, data, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send(s, 3, data, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send(s, -1, data, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send(s, 8, data, 1), WSCONN_ERR_INVALID_ARGUMENT); /* close opcode */
    CHECK_EQ(wsconn_session_send(s, 9, data, 1), WSCONN_ERR_INVALID_ARGUMENT); /* ping opcode */
    CHECK_EQ(wsconn_session_send_fragment(s, 0, data, 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send_fragment(s, 0x7fffffff, data, 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    /* NULL data with a length; "negative" (huge) lengths. */
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_BINARY, NULL, 1, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_ping(s, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_pong(s, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, data, (size_t)-1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_BINARY, data, (size_t)-1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_ping(s, data, (size_t)-1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_pong(s, data, (size_t)-1), WSCONN_ERR_INVALID_ARGUMENT);
    /* Text that is not UTF-8. */
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, bad_utf8, 2), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, (const uint8_t *)"\xed\xa0\x80", 3),
             WSCONN_ERR_INVALID_ARGUMENT); /* a surrogate */
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, (const uint8_t *)"\xc3", 1),
             WSCONN_ERR_INVALID_ARGUMENT); /* truncated */
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_TEXT, bad_utf8, 2, 1), WSCONN_ERR_INVALID_ARGUMENT);
    /* Control payloads over 125 bytes. */
    CHECK_EQ(wsconn_session_ping(s, data, 126), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_pong(s, data, 126), WSCONN_ERR_INVALID_ARGUMENT);
    /* Close codes not allowed on the wire, 1005 with a reason, long or bad reasons. */
    const int bad_codes[] = {-1, 0, 1, 999, 1004, 1006, 1012, 1015, 2000, 2999, 5000, 65535, 65536 + 1000, 0x7fffffff};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        int rc = wsconn_session_close(s, bad_codes[i], NULL);
        if (rc != WSCONN_ERR_INVALID_ARGUMENT) fprintf(stderr, "close code %d\n", bad_codes[i]);
        CHECK_EQ(rc, WSCONN_ERR_INVALID_ARGUMENT);
    }
    CHECK_EQ(wsconn_session_close(s, 1005, "why"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_close(s, 1000, long_reason), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_close(s, 1000, "\xff"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_close(s, 1000, "\xc3\x28"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_OPEN);
    /* Nothing above queued a byte. */
    CHECK_EQ(wsconn_session_buffered_amount(s), 0);
    CHECK_EQ(wsconn_session_want_write(s), 0);

    /* Fragments: a whole message or another type while one is unfinished. */
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_TEXT, (const uint8_t *)"ab", 2, 0), WSCONN_OK);
    size_t after_first = wsconn_session_buffered_amount(s);
    CHECK(after_first > 0);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, (const uint8_t *)"x", 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_BINARY, (const uint8_t *)"x", 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    /* Text checked across fragments: a sequence split, then completed badly. */
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_TEXT, (const uint8_t *)"\xe2\x82", 2, 0), WSCONN_OK);
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_TEXT, (const uint8_t *)"(", 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    /* An unfinished sequence at fin. */
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_TEXT, NULL, 0, 1), WSCONN_ERR_INVALID_ARGUMENT);
    /* A control frame in between is fine. */
    CHECK_EQ(wsconn_session_ping(s, (const uint8_t *)"p", 1), WSCONN_OK);
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_TEXT, (const uint8_t *)"\xac", 1, 1), WSCONN_OK);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, NULL, 0), WSCONN_OK);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, NULL, 0), WSCONN_OK);
    CHECK_EQ(wsconn_session_ping(s, data, 125), WSCONN_OK);
    CHECK_EQ(wsconn_session_pong(s, data, 125), WSCONN_OK);
    drain_output(s);

    /* 1005 (no status) without a reason is allowed; then everything is CLOSED. */
    CHECK_EQ(wsconn_session_close(s, 1005, NULL), WSCONN_OK);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_CLOSING);
    const uint8_t *out = NULL;
    CHECK_EQ(wsconn_session_output(s, &out), 2);
    if (out) CHECK(out[0] == 0x88 && out[1] == 0x00);
    CHECK_EQ(wsconn_session_close(s, 1000, NULL), WSCONN_ERR_CLOSED);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, (const uint8_t *)"x", 1), WSCONN_ERR_CLOSED);
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_TEXT, (const uint8_t *)"x", 1, 1), WSCONN_ERR_CLOSED);
    CHECK_EQ(wsconn_session_ping(s, NULL, 0), WSCONN_ERR_CLOSED);
    CHECK_EQ(wsconn_session_pong(s, NULL, 0), WSCONN_ERR_CLOSED);
    CHECK_EQ(wsconn_session_buffered_amount(s), 2);
    wsconn_session_free(s);

    /* Good close codes with reasons of the maximum length. */
    const int good_codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999};
    char reason123[124];
    memset(reason123, 'r', 123);
    reason123[123] = '\0';
    for (size_t i = 0; i < sizeof good_codes / sizeof good_codes[0]; i++) {
        s = open_server(NULL, NULL, NULL);
        if (!s) continue;
        int rc = wsconn_session_close(s, good_codes[i], reason123);
        if (rc != WSCONN_OK) fprintf(stderr, "close code %d\n", good_codes[i]);
        CHECK_EQ(rc, WSCONN_OK);
        CHECK_EQ(wsconn_session_buffered_amount(s), 2 + 2 + 123);
        wsconn_session_free(s);
    }
}

/* ------------------------------------------------------------------ */
/* Free from inside on_message; feed from inside callbacks.            */

struct cb_state {
    int messages;
    int opens;
    int closes;
    int errors;
    int free_in_message;    /* free the session in the first on_message */
    int reenter;            /* call feed / feed_eof from callbacks */
    int reenter_feed_rc;
    int reenter_eof_rc;
    int reenter_consume_rc;
    int send_in_callback_rc;
    int state_in_callback;
};

static void cb_open(wsconn_session_t *s, void *arg, const char *path, const char *subprotocol) {
    struct cb_state *st = arg;
    st->opens++;
    CHECK(path != NULL && strcmp(path, "/chat") == 0);
    CHECK(subprotocol == NULL);
    if (st->reenter) {
        uint8_t b[1] = {0};
        CHECK_EQ(wsconn_session_feed(s, b, 1), WSCONN_ERR_REENTRANT);
        CHECK_EQ(wsconn_session_feed_eof(s), WSCONN_ERR_REENTRANT);
    }
}

static void cb_message(wsconn_session_t *s, void *arg, int type, const uint8_t *data, size_t len) {
    struct cb_state *st = arg;
    st->messages++;
    CHECK_EQ(type, WSCONN_MSG_TEXT);
    CHECK(len == 5 && memcmp(data, "hello", 5) == 0);
    if (st->reenter) {
        uint8_t b[8];
        memcpy(b, "\x81\x80\0\0\0\0", 6);
        st->reenter_feed_rc = wsconn_session_feed(s, b, 6);
        st->reenter_eof_rc = wsconn_session_feed_eof(s);
        /* Sends are allowed inside callbacks. */
        st->send_in_callback_rc = wsconn_session_send(s, type, data, len);
        st->state_in_callback = wsconn_session_state(s);
    }
    if (st->free_in_message && st->messages == 1) {
        /* Freed when this callback returns; s is not used again. */
        wsconn_session_free(s);
    }
}

static void cb_close(wsconn_session_t *s, void *arg, int code, const char *reason, size_t reason_len) {
    struct cb_state *st = arg;
    (void)s;
    st->closes++;
    CHECK_EQ(code, 1000);
    CHECK(reason != NULL && reason_len == 3 && strcmp(reason, "bye") == 0);
}

static void cb_error(wsconn_session_t *s, void *arg, int error) {
    struct cb_state *st = arg;
    (void)s;
    (void)error;
    st->errors++;
}

static const wsconn_session_callbacks_t CALLBACKS = {
    .on_open = cb_open,
    .on_message = cb_message,
    .on_close = cb_close,
    .on_error = cb_error,
};

static void test_free_in_callback(void) {
    struct cb_state st = {0};
    st.free_in_message = 1;
    wsconn_session_t *s = wsconn_session_server_new(NULL, &CALLBACKS, &st);
    CHECK(s != NULL);
    if (!s) return;
    /* The handshake and three messages and a close in one buffer. */
    static uint8_t buf[4096];
    size_t n = 0;
    memcpy(buf, REQUEST, sizeof REQUEST - 1);
    n += sizeof REQUEST - 1;
    for (int i = 0; i < 3; i++) n += client_frame(buf + n, 1, 0x1, "hello", 5);
    n += client_frame(buf + n, 1, 0x8, "\x03\xe8" "bye", 5);
    int rc = wsconn_session_feed(s, buf, n);
    /* The session is gone: the feed stopped after the first message. */
    CHECK_EQ(rc, WSCONN_OK);
    CHECK_EQ(st.opens, 1);
    CHECK_EQ(st.messages, 1);
    CHECK_EQ(st.closes, 0);
    CHECK_EQ(st.errors, 0);
    /* s must not be touched any more: ASan reports a use or a leak. */

    /* The same with the frames arriving byte by byte: free on the first
     * message, in the middle of the byte stream. */
    memset(&st, 0, sizeof st);
    st.free_in_message = 1;
    s = wsconn_session_server_new(NULL, &CALLBACKS, &st);
    n = 0;
    memcpy(buf, REQUEST, sizeof REQUEST - 1);
    n += sizeof REQUEST - 1;
    size_t msg_start = n;
    n += client_frame(buf + n, 1, 0x1, "hello", 5);
    n += client_frame(buf + n, 1, 0x1, "hello", 5);
    CHECK_EQ(wsconn_session_feed(s, buf, msg_start), WSCONN_OK);
    size_t i = msg_start;
    for (; i < n && st.messages == 0; i++) CHECK_EQ(wsconn_session_feed(s, buf + i, 1), WSCONN_OK);
    CHECK_EQ(st.messages, 1);
    CHECK_EQ(i, msg_start + 11); /* the message ended with its 11th byte */
}

static void test_reentrant_feed(void) {
    struct cb_state st = {0};
    st.reenter = 1;
    st.reenter_feed_rc = 1;
    st.reenter_eof_rc = 1;
    wsconn_session_t *s = wsconn_session_server_new(NULL, &CALLBACKS, &st);
    CHECK(s != NULL);
    if (!s) return;
    static uint8_t buf[4096];
    size_t n = 0;
    memcpy(buf, REQUEST, sizeof REQUEST - 1);
    n += sizeof REQUEST - 1;
    n += client_frame(buf + n, 1, 0x1, "hello", 5);
    CHECK_EQ(wsconn_session_feed(s, buf, n), WSCONN_OK);
    CHECK_EQ(st.opens, 1);
    CHECK_EQ(st.messages, 1);
    CHECK_EQ(st.reenter_feed_rc, WSCONN_ERR_REENTRANT);
    CHECK_EQ(st.reenter_eof_rc, WSCONN_ERR_REENTRANT);
    CHECK_EQ(st.send_in_callback_rc, WSCONN_OK);
    CHECK_EQ(st.state_in_callback, WSCONN_STATE_OPEN);
    CHECK_EQ(st.errors, 0);
    /* The refused re-entrant calls did not disturb the session: the echo is
     * queued after the 101, and a following close works. */
    const uint8_t *out = NULL;
    size_t len = wsconn_session_output(s, &out);
    CHECK(len > 7 && memcmp(out, "HTTP/1.1 101", 12) == 0);
    if (len > 7) CHECK(memcmp(out + len - 7, "\x81\x05hello", 7) == 0);
    drain_output(s);
    n = client_frame(buf, 1, 0x8, "\x03\xe8" "bye", 5);
    CHECK_EQ(wsconn_session_feed(s, buf, n), WSCONN_OK);
    CHECK_EQ(st.closes, 1);
    CHECK_EQ(st.messages, 1);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_CLOSED);
    len = wsconn_session_output(s, &out);
    /* The reply echoes the status code. */
    CHECK(len == 4 && memcmp(out, "\x88\x02\x03\xe8", 4) == 0);
    wsconn_session_free(s);
}

/* ------------------------------------------------------------------ */
/* A send refused with WSCONN_ERR_FULL queues nothing.                 */

static void test_full_queues_nothing(void) {
    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_config_set_max_output(cfg, 1000), WSCONN_OK);
    wsconn_session_t *s = open_server(cfg, NULL, NULL);
    wsconn_config_free(cfg);
    if (!s) return;
    static uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)i;

    /* 300-byte messages (304-byte frames): three fit in 1000, the fourth does not. */
    int sent = 0, rc;
    while ((rc = wsconn_session_send(s, WSCONN_MSG_BINARY, msg, sizeof msg)) == WSCONN_OK) sent++;
    CHECK_EQ(rc, WSCONN_ERR_FULL);
    CHECK_EQ(sent, 3);
    size_t before = wsconn_session_buffered_amount(s);
    CHECK_EQ(before, 3 * 304);
    const uint8_t *out = NULL;
    CHECK_EQ(wsconn_session_output(s, &out), before);
    static uint8_t snapshot[1000];
    memcpy(snapshot, out, before);

    /* Every kind of refused send leaves the output exactly as it was. */
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, msg, sizeof msg), WSCONN_ERR_FULL);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, (const uint8_t *)"0123456789012345678901234567890123456789"
                                                     "0123456789012345678901234567890123456789",
                                 80),
             WSCONN_ERR_FULL);
    CHECK_EQ(wsconn_session_send_fragment(s, WSCONN_MSG_BINARY, msg, 100, 0), WSCONN_ERR_FULL);
    CHECK_EQ(wsconn_session_ping(s, msg, 125), WSCONN_ERR_FULL);
    CHECK_EQ(wsconn_session_pong(s, msg, 125), WSCONN_ERR_FULL);
    CHECK_EQ(wsconn_session_buffered_amount(s), before);
    CHECK_EQ(wsconn_session_output(s, &out), before);
    CHECK(memcmp(out, snapshot, before) == 0);
    /* The refused fragment did not start a fragmented message: a whole one
     * (which fits) is accepted. */
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, msg, 10), WSCONN_OK);
    CHECK_EQ(wsconn_session_buffered_amount(s), before + 12);
    /* over half the max output: the program should stop reading. */
    CHECK_EQ(wsconn_session_want_read(s), 0);
    CHECK_EQ(wsconn_session_want_write(s), 1);

    /* After writing some of it, sends fit again. */
    CHECK_EQ(wsconn_session_consume(s, 304), WSCONN_OK);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, msg, sizeof msg), WSCONN_OK);
    CHECK_EQ(wsconn_session_output(s, &out), 3 * 304 + 12);
    CHECK(memcmp(out, snapshot + 304, 2 * 304) == 0);
    drain_output(s);
    CHECK_EQ(wsconn_session_buffered_amount(s), 0);
    CHECK_EQ(wsconn_session_want_read(s), 1);
    /* With nothing pending, one message larger than the max is accepted. */
    static uint8_t big[5000];
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, big, sizeof big), WSCONN_OK);
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_BINARY, big, 1), WSCONN_ERR_FULL);
    CHECK_EQ(wsconn_session_buffered_amount(s), sizeof big + 4);
    wsconn_session_free(s);
}

/* ------------------------------------------------------------------ */
/* Outgoing text is never invalid: a program that changes the delivered */
/* bytes (its own fed buffer) and echoes them has them refused.         */

struct tamper {
    int messages;
    int echo_rc;
    int copy_rc;
};

static void cb_tamper_echo(wsconn_session_t *s, void *arg, int type, const uint8_t *data, size_t len) {
    struct tamper *t = arg;
    t->messages++;
    CHECK_EQ(type, WSCONN_MSG_TEXT);
    CHECK_EQ(len, 5);
    /* data points into the buffer the program fed: its own memory. */
    ((uint8_t *)data)[0] = 0xff;
    t->echo_rc = wsconn_session_send(s, WSCONN_MSG_TEXT, data, len);
    /* Sending the same bytes from elsewhere is refused the same way. */
    uint8_t copy[5];
    memcpy(copy, data, len);
    t->copy_rc = wsconn_session_send(s, WSCONN_MSG_TEXT, copy, len);
}

static void test_tampered_echo_is_refused(void) {
    struct tamper t = {0, 0, 0};
    wsconn_session_callbacks_t cb = {0};
    cb.on_message = cb_tamper_echo;
    wsconn_session_t *s = open_server(NULL, &cb, &t);
    if (!s) return;
    uint8_t frame[64];
    size_t n = client_frame(frame, 1, 0x1, "hello", 5);
    CHECK_EQ(wsconn_session_feed(s, frame, n), WSCONN_OK);
    CHECK_EQ(t.messages, 1);
    CHECK_EQ(t.echo_rc, WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(t.copy_rc, WSCONN_ERR_INVALID_ARGUMENT);
    /* Nothing was queued: no "81 05 ff 65 6c 6c 6f" on the wire. */
    CHECK_EQ(wsconn_session_buffered_amount(s), 0);
    wsconn_session_free(s);
}

/* ------------------------------------------------------------------ */
/* Reactor API: NULL everywhere.                                       */

static int deferred_runs;

static void on_defer(void *arg) {
    int *count = arg;
    (*count)++;
}

static int accept_refuse(int fd, void *arg) {
    (void)fd;
    (void)arg;
    return -1;
}

static void build_noop(int fd, void *arg) {
    (void)fd;
    (void)arg;
}

static int read_noop(int fd, void *arg, const char *buffer, int buflen) {
    (void)fd;
    (void)arg;
    (void)buffer;
    return buflen;
}

static void close_noop(int fd, void *arg) {
    (void)fd;
    (void)arg;
}

static void message_noop(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    (void)con;
    (void)arg;
    (void)type;
    (void)data;
    (void)len;
}

static void fragment_noop(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len, int fin) {
    (void)con;
    (void)arg;
    (void)type;
    (void)data;
    (void)len;
    (void)fin;
}

static void close_ex_noop(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    (void)con;
    (void)arg;
    (void)code;
    (void)reason;
    (void)reason_len;
}

static void drain_noop(wsconn_t *con, void *arg) {
    (void)con;
    (void)arg;
}

static void pong_noop(wsconn_t *con, void *arg, const uint8_t *data, size_t len) {
    (void)con;
    (void)arg;
    (void)data;
    (void)len;
}

static int http_noop(wsconn_t *con, void *arg, const char *method, const char *path) {
    (void)con;
    (void)arg;
    (void)method;
    (void)path;
    return 0;
}

/* An open pipe fd is still open (nothing closed it). */
static int fd_is_open(int fd) {
    return fcntl(fd, F_GETFD) != -1;
}

static void test_reactor_null(void) {
    int pipe_fds[2];
    CHECK_EQ(pipe(pipe_fds), 0);

    CHECK_EQ(wsconn_reactor_dispatch(NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_dispatch(NULL, -1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_release(NULL), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_defer(NULL, on_defer, &deferred_runs), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_defer(NULL, NULL, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_set_config(NULL, NULL), WSCONN_ERR_NULL);
    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_reactor_set_config(NULL, cfg), WSCONN_ERR_NULL);

    CHECK(wsconn_acceptor_create(NULL) == NULL);
    wsconn_acceptor_set_accept_func(NULL, accept_refuse, NULL);
    wsconn_acceptor_set_accept_func(NULL, NULL, NULL);
    CHECK_EQ(wsconn_acceptor_start(NULL, "127.0.0.1", 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_start(NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_start(NULL, "not an ip", -1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_port(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_stop(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_set_reuseport(NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_set_tls(NULL, "cert.pem", "key.pem"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_set_tls_pem(NULL, (const uint8_t *)"x", 1, (const uint8_t *)"y", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_add_tls_name(NULL, "a.test", "c.pem", "k.pem"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_tls_refused(NULL), 0);
    CHECK_EQ(wsconn_acceptor_set_tls_client_ca(NULL, "ca.pem"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_release(NULL), WSCONN_OK);

    CHECK(wsconn_create(NULL) == NULL);
    CHECK_EQ(wsconn_release(NULL), WSCONN_OK);
    wsconn_set_build_func(NULL, build_noop, NULL);
    wsconn_set_build_func(NULL, NULL, NULL);
    wsconn_set_read_func(NULL, read_noop, NULL);
    wsconn_set_read_func(NULL, NULL, NULL);
    wsconn_set_close_func(NULL, close_noop, NULL);
    wsconn_set_close_func(NULL, NULL, NULL);
    wsconn_set_message_func(NULL, message_noop, NULL);
    wsconn_set_message_func(NULL, NULL, NULL);
    wsconn_set_fragment_func(NULL, fragment_noop, NULL);
    wsconn_set_fragment_func(NULL, NULL, NULL);
    wsconn_set_close_ex_func(NULL, close_ex_noop, NULL);
    wsconn_set_close_ex_func(NULL, NULL, NULL);
    wsconn_set_drain_func(NULL, drain_noop, NULL);
    wsconn_set_drain_func(NULL, NULL, NULL);
    wsconn_set_pong_func(NULL, pong_noop, NULL);
    wsconn_set_pong_func(NULL, NULL, NULL);
    wsconn_set_http_func(NULL, http_noop, NULL);
    wsconn_set_http_func(NULL, NULL, NULL);
    CHECK_EQ(wsconn_set_config(NULL, cfg), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_set_config(NULL, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_fd(NULL), -1);
    wsconn_set_fd(NULL, pipe_fds[0]);   /* ignored: the fd is not taken or closed */
    wsconn_set_fd(NULL, -1);
    CHECK(fd_is_open(pipe_fds[0]));
    CHECK_EQ(wsconn_start(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_stop(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_established(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send(NULL, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send(NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_text(NULL, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_binary(NULL, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_fragment(NULL, WSCONN_MSG_TEXT, "x", 1, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_ping(NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_close(NULL, 1000, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_close(NULL, 1000, "bye"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_buffered_amount(NULL), 0);
    CHECK_EQ(wsconn_pause_read(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_resume_read(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_connect(NULL, "ws://127.0.0.1:1/"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_connect(NULL, NULL), WSCONN_ERR_NULL);
    CHECK(wsconn_subprotocol(NULL) == NULL);
    CHECK_EQ(wsconn_close_error(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_http_respond(NULL, 200, "text/plain", "x", 1), WSCONN_ERR_NULL);

    CHECK_EQ(wsconn_config_set_handshake_timeout(NULL, 1000), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_idle_timeout(NULL, 1000), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_ping_interval(NULL, 1000), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_pong_timeout(NULL, 1000), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_close_timeout(NULL, 1000), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_message_timeout(NULL, 1000), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_message_timeout(cfg, 0), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_set_memory_budget(NULL, 1 << 20), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_set_busy_poll(NULL, 50), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_memory(NULL, NULL, NULL), WSCONN_ERR_NULL);
    /* 0 is "off" for idle and ping, refused for the others. */
    CHECK_EQ(wsconn_config_set_handshake_timeout(cfg, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_pong_timeout(cfg, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_close_timeout(cfg, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_idle_timeout(cfg, 0), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_ping_interval(cfg, 0), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_handshake_timeout(cfg, UINT32_MAX), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_idle_timeout(cfg, UINT32_MAX), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_ping_interval(cfg, UINT32_MAX), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_pong_timeout(cfg, UINT32_MAX), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_close_timeout(cfg, UINT32_MAX), WSCONN_OK);

    /* TLS options: NULLs, missing files (the config is left unchanged). */
    CHECK_EQ(wsconn_config_set_tls_ca_file(NULL, "ca.pem"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_tls_ca_file(cfg, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_tls_ca_file(cfg, "/nonexistent/ca.pem"), WSCONN_ERR_TLS_CREDENTIALS);
    CHECK_EQ(wsconn_config_set_tls_client_cert(NULL, "c.pem", "k.pem"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_tls_client_cert(cfg, "c.pem", NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_tls_client_cert(cfg, "/nonexistent/c.pem", "/nonexistent/k.pem"),
             WSCONN_ERR_TLS_CREDENTIALS);
    CHECK_EQ(wsconn_config_set_tls_insecure(NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_tls_insecure(cfg, 1), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_tls_insecure(cfg, 0), WSCONN_OK);

    wsconn_config_free(cfg);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

/* ------------------------------------------------------------------ */
/* Reactor API: bad values on live objects.                            */

static void *defer_from_thread(void *arg) {
    wsconn_reactor_t *r = arg;
    usleep(50 * 1000);
    intptr_t rc = wsconn_reactor_defer(r, on_defer, &deferred_runs);
    return (void *)rc;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_reactor_objects(void) {
    wsconn_reactor_t *r = wsconn_reactor_create();
    CHECK(r != NULL);
    if (!r) return;
    CHECK_EQ(wsconn_reactor_dispatch(r, 0), 0);
    CHECK_EQ(wsconn_reactor_set_config(r, NULL), WSCONN_ERR_NULL);
    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_reactor_set_config(r, cfg), WSCONN_OK);

    /* defer: NULL function; from this thread; from another thread. */
    CHECK_EQ(wsconn_reactor_defer(r, NULL, NULL), WSCONN_ERR_NULL);
    deferred_runs = 0;
    CHECK_EQ(wsconn_reactor_defer(r, on_defer, &deferred_runs), WSCONN_OK);
    CHECK_EQ(deferred_runs, 0); /* not run inside defer */
    double t0 = now_ms();
    while (deferred_runs == 0 && now_ms() - t0 < 2000) CHECK(wsconn_reactor_dispatch(r, 1000) >= 0);
    CHECK_EQ(deferred_runs, 1);
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, defer_from_thread, r), 0);
    t0 = now_ms();
    /* dispatch(-1) waits until the other thread's defer wakes it. */
    int n = wsconn_reactor_dispatch(r, -1);
    CHECK(n >= 1);
    while (deferred_runs == 1 && now_ms() - t0 < 5000) CHECK(wsconn_reactor_dispatch(r, 100) >= 0);
    CHECK_EQ(deferred_runs, 2);
    void *thread_rc = (void *)1;
    pthread_join(thread, &thread_rc);
    CHECK_EQ((intptr_t)thread_rc, WSCONN_OK);
    CHECK(now_ms() - t0 < 3000);

    /* Acceptor: bad IPs and ports; nothing listens after a refused start. */
    wsconn_acceptor_t *acc = wsconn_acceptor_create(r);
    CHECK(acc != NULL);
    CHECK_EQ(wsconn_acceptor_port(acc), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_stop(acc), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_start(acc, NULL, 0), WSCONN_ERR_NULL);
    const char *bad_ips[] = {"", "localhost", "example.com", "127.0.0.1:80", "127.0.0", "256.0.0.1",
                             "1.2.3.4.5", "-1.0.0.0", "::1::", "[::1]", " 127.0.0.1", "127.0.0.1 ",
                             "127.0.0.1\n", "\xff\xfe", "127.0.0.\xc3\xa9", "ws://127.0.0.1"};
    for (size_t i = 0; i < sizeof bad_ips / sizeof bad_ips[0]; i++) {
        int rc = wsconn_acceptor_start(acc, bad_ips[i], 0);
        if (rc != WSCONN_ERR_INVALID_ARGUMENT) fprintf(stderr, "ip %s\n", bad_ips[i]);
        CHECK_EQ(rc, WSCONN_ERR_INVALID_ARGUMENT);
    }
    const int bad_ports[] = {-1, -80, 65536, 70000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        int rc = wsconn_acceptor_start(acc, "127.0.0.1", bad_ports[i]);
        if (rc != WSCONN_ERR_INVALID_ARGUMENT) fprintf(stderr, "port %d\n", bad_ports[i]);
        CHECK_EQ(rc, WSCONN_ERR_INVALID_ARGUMENT);
    }
    CHECK_EQ(wsconn_acceptor_port(acc), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    int port = wsconn_acceptor_port(acc);
    CHECK(port > 0 && port < 65536);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_port(acc), port);
    /* The port is taken: a second acceptor cannot listen on it. */
    wsconn_acceptor_t *acc2 = wsconn_acceptor_create(r);
    CHECK_EQ(wsconn_acceptor_start(acc2, "127.0.0.1", port), WSCONN_ERR_IO);
    CHECK_EQ(wsconn_acceptor_port(acc2), WSCONN_ERR_STATE);
    /* IPv6 loopback: listens, or WSCONN_ERR_IO where IPv6 is disabled. */
    int rc6 = wsconn_acceptor_start(acc2, "::1", 0);
    CHECK(rc6 == WSCONN_OK || rc6 == WSCONN_ERR_IO);
    if (rc6 == WSCONN_OK) CHECK(wsconn_acceptor_port(acc2) > 0);
    else printf("note: no IPv6 loopback here (wsconn_acceptor_start(::1) = %d)\n", rc6);
    CHECK_EQ(wsconn_acceptor_release(acc2), WSCONN_OK);
    /* TLS: bad credentials change nothing; NULL, NULL is plain again. */
    CHECK_EQ(wsconn_acceptor_set_tls(acc, "/nonexistent/c.pem", "/nonexistent/k.pem"), WSCONN_ERR_TLS_CREDENTIALS);
    CHECK_EQ(wsconn_acceptor_set_tls(acc, "c.pem", NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_set_tls_pem(acc, (const uint8_t *)"not PEM", 7, (const uint8_t *)"no", 2),
             WSCONN_ERR_TLS_CREDENTIALS);
    CHECK_EQ(wsconn_acceptor_set_tls_pem(acc, NULL, 1, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_add_tls_name(acc, "a.test", "c.pem", "k.pem"), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_add_tls_name(acc, NULL, "c.pem", "k.pem"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_set_tls_client_ca(acc, "ca.pem"), WSCONN_ERR_STATE); /* no TLS served yet */
    CHECK_EQ(wsconn_acceptor_set_tls_client_ca(acc, NULL), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_set_tls(acc, NULL, NULL), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_tls_refused(acc), 0); /* none refused on this port */
    /* SO_REUSEPORT: only before start; then two acceptors share one port. */
    CHECK_EQ(wsconn_acceptor_set_reuseport(acc, 1), WSCONN_ERR_STATE);
    {
        wsconn_acceptor_t *a1 = wsconn_acceptor_create(r);
        wsconn_acceptor_t *a2 = wsconn_acceptor_create(r);
        CHECK_EQ(wsconn_acceptor_set_reuseport(a1, 1), WSCONN_OK);
        CHECK_EQ(wsconn_acceptor_set_reuseport(a2, 1), WSCONN_OK);
        CHECK_EQ(wsconn_acceptor_start(a1, "127.0.0.1", 0), WSCONN_OK);
        int shared = wsconn_acceptor_port(a1);
        CHECK_EQ(wsconn_acceptor_start(a2, "127.0.0.1", shared), WSCONN_OK);
        CHECK_EQ(wsconn_acceptor_port(a2), shared);
        CHECK_EQ(wsconn_acceptor_release(a1), WSCONN_OK);
        CHECK_EQ(wsconn_acceptor_release(a2), WSCONN_OK);
    }
    /* Stop, stop again, restart. */
    CHECK_EQ(wsconn_acceptor_stop(acc), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_stop(acc), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_port(acc), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    CHECK(wsconn_acceptor_port(acc) > 0);
    /* An acceptor without an accept function, or refusing: fine. */
    wsconn_acceptor_set_accept_func(acc, NULL, NULL);
    wsconn_acceptor_set_accept_func(acc, accept_refuse, NULL);

    /* A connection that was never started. */
    int pipe_fds[2];
    CHECK_EQ(pipe(pipe_fds), 0);
    wsconn_t *c = wsconn_create(r);
    CHECK(c != NULL);
    CHECK_EQ(wsconn_fd(c), -1);
    wsconn_set_fd(c, -1); /* ignored */
    wsconn_set_fd(c, -5);
    CHECK_EQ(wsconn_fd(c), -1);
    CHECK_EQ(wsconn_start(c), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_stop(c), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_established(c), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_send(c, "x", 1), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_send(c, "x", -1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send(c, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_text(c, "x", 1), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_send_binary(c, "x", 1), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_send_binary(c, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_fragment(c, WSCONN_MSG_BINARY, "x", 1, 1), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_send_fragment(c, 3, "x", 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_ping(c, NULL, 0), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_close(c, 1000, NULL), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_buffered_amount(c), 0);
    CHECK_EQ(wsconn_pause_read(c), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_resume_read(c), WSCONN_ERR_STATE);
    CHECK(wsconn_subprotocol(c) == NULL);
    CHECK_EQ(wsconn_close_error(c), WSCONN_OK);
    CHECK_EQ(wsconn_http_respond(c, 200, "text/plain", "x", 1), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_set_config(c, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_set_config(c, cfg), WSCONN_OK);
    /* Bad URLs: refused, and the connection stays unstarted. */
    const char *bad_urls[] = {"", "http://x", "http://127.0.0.1:1/", "https://x/", "wss://", "wss://user@/", "ws://",
                              "ws:/x", "ws:x", "ws://[::1", "ws://[::1]x/", "ws://:80/", "ws://x:0/",
                              "ws://x:-1/", "ws://x:70000/", "ws://x:port/", "ws://u%zz@x/", "ws://x/#frag",
                              "ws://x/a b", "ws://x/\r\nX: y", "ws://\xff\xfe/", "ws://x/\xc3\x28",
                              "ws://caf\xc3\xa9.example/", " ws://x/"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        int rc = wsconn_connect(c, bad_urls[i]);
        if (rc != WSCONN_ERR_INVALID_ARGUMENT) fprintf(stderr, "url %s\n", bad_urls[i]);
        CHECK_EQ(rc, WSCONN_ERR_INVALID_ARGUMENT);
    }
    CHECK_EQ(wsconn_connect(c, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_fd(c), -1);
    CHECK_EQ(wsconn_established(c), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_release(c), WSCONN_OK);

    /* set_fd on a fresh connection, then release without starting: the
     * connection owns the fd and closes it. */
    c = wsconn_create(r);
    wsconn_set_fd(c, pipe_fds[0]);
    CHECK_EQ(wsconn_fd(c), pipe_fds[0]);
    CHECK_EQ(wsconn_release(c), WSCONN_OK);
    CHECK(!fd_is_open(pipe_fds[0]));
    close(pipe_fds[1]);

    CHECK_EQ(wsconn_acceptor_release(acc), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_dispatch(r, 0), 0);
    CHECK_EQ(wsconn_reactor_release(r), WSCONN_OK);
    wsconn_config_free(cfg);
}

/* ------------------------------------------------------------------ */
/* Reactor API: a live client/server pair on one reactor.              */

struct pair {
    wsconn_reactor_t *r;
    wsconn_t *client;
    wsconn_t *server;
    int client_built, server_built;
    int client_closed, server_closed;
    int client_close_code, server_close_code;
    char server_close_reason[128];
    int messages;            /* messages the client received */
    char last[64];
    int server_messages;
    int reentrant_dispatch_rc;
    int release_in_dispatch_rc;
    int release_server_on;   /* the server releases itself on this message */
};

static void pair_client_build(int fd, void *arg) {
    struct pair *p = arg;
    CHECK(fd >= 0 && fd == wsconn_fd(p->client));
    p->client_built++;
}

static void pair_server_build(int fd, void *arg) {
    struct pair *p = arg;
    CHECK(fd >= 0);
    p->server_built++;
    /* Inside a callback: no nested dispatch, no releasing the reactor. */
    p->reentrant_dispatch_rc = wsconn_reactor_dispatch(p->r, 0);
    p->release_in_dispatch_rc = wsconn_reactor_release(p->r);
}

static void pair_client_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    struct pair *p = arg;
    (void)con;
    CHECK_EQ(type, WSCONN_MSG_TEXT);
    p->messages++;
    size_t n = len < sizeof p->last - 1 ? len : sizeof p->last - 1;
    memcpy(p->last, data, n);
    p->last[n] = '\0';
}

static void pair_server_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    struct pair *p = arg;
    p->server_messages++;
    if (p->release_server_on && p->server_messages == p->release_server_on) {
        /* Released inside its own callback: freed when the dispatch ends;
         * the messages after this one are not delivered. */
        CHECK_EQ(wsconn_release(con), WSCONN_OK);
        p->server = NULL;
        return;
    }
    CHECK_EQ(type == WSCONN_MSG_TEXT ? wsconn_send_text(con, (const char *)data, len)
                                     : wsconn_send_binary(con, data, len),
             WSCONN_OK);
}

static void pair_client_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    struct pair *p = arg;
    (void)con;
    CHECK(reason != NULL && strlen(reason) == reason_len);
    p->client_closed++;
    p->client_close_code = code;
}

static void pair_server_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    struct pair *p = arg;
    (void)con;
    p->server_closed++;
    p->server_close_code = code;
    snprintf(p->server_close_reason, sizeof p->server_close_reason, "%.*s", (int)reason_len, reason);
}


static int pair_accept(int fd, void *arg) {
    struct pair *p = arg;
    CHECK(p->server == NULL);
    wsconn_t *s = wsconn_create(p->r);
    wsconn_set_build_func(s, pair_server_build, p);
    wsconn_set_message_func(s, pair_server_message, p);
    wsconn_set_close_ex_func(s, pair_server_close, p);
    wsconn_set_fd(s, fd);
    CHECK_EQ(wsconn_fd(s), fd);
    CHECK_EQ(wsconn_start(s), WSCONN_OK);
    CHECK_EQ(wsconn_start(s), WSCONN_ERR_STATE);
    p->server = s;
    return 0;
}

/* Dispatches until *flag is nonzero, at most ms milliseconds. */
static int run_until(wsconn_reactor_t *r, const int *flag, double ms) {
    double t0 = now_ms();
    while (!*flag && now_ms() - t0 < ms) {
        int n = wsconn_reactor_dispatch(r, 20);
        if (n < 0) {
            CHECK_EQ(n, 0);
            return 0;
        }
    }
    return *flag;
}

/* Bad values on an established connection: each refused, nothing queued. */
static void bad_values_on_open(wsconn_t *con) {
    char long_reason[125];
    memset(long_reason, 'r', 124);
    long_reason[124] = '\0';
    static const char zeros[200];
    size_t before = wsconn_buffered_amount(con);

    CHECK_EQ(wsconn_send(con, "x", -1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send(con, "x", INT32_MIN), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send(con, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send(con, "\xc3\x28", 2), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send(con, "\xff", 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_text(con, "\xc3\x28", 2), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_text(con, "\xed\xa0\x80", 3), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_text(con, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_text(con, "x", SIZE_MAX), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_binary(con, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_binary(con, "x", SIZE_MAX), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_fragment(con, 0, "x", 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_fragment(con, 3, "x", 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_fragment(con, -1, "x", 1, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_fragment(con, 9, "x", 1, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_fragment(con, WSCONN_MSG_TEXT, "\xc3\x28", 2, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_send_fragment(con, WSCONN_MSG_BINARY, NULL, 1, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_ping(con, zeros, 126), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_ping(con, NULL, 1), WSCONN_ERR_NULL);
    const int bad_codes[] = {-1, 0, 999, 1004, 1006, 1012, 1015, 2999, 5000, 65535, 65536 + 1000};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        int rc = wsconn_close(con, bad_codes[i], NULL);
        if (rc != WSCONN_ERR_INVALID_ARGUMENT) fprintf(stderr, "wsconn_close code %d\n", bad_codes[i]);
        CHECK_EQ(rc, WSCONN_ERR_INVALID_ARGUMENT);
    }
    CHECK_EQ(wsconn_close(con, 1005, "with a reason"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_close(con, 1000, long_reason), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_close(con, 1000, "\xc3\x28"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_http_respond(con, 200, "text/plain", "x", 1), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_http_respond(con, 200, NULL, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_set_config(con, NULL), WSCONN_ERR_NULL);
    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_set_config(con, cfg), WSCONN_ERR_STATE);
    wsconn_config_free(cfg);
    CHECK_EQ(wsconn_start(con), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_connect(con, "ws://127.0.0.1:1/"), WSCONN_ERR_STATE);
    /* set_fd on a running connection is ignored (the fd is not taken). */
    int fd = wsconn_fd(con);
    int pipe_fds[2];
    CHECK_EQ(pipe(pipe_fds), 0);
    wsconn_set_fd(con, pipe_fds[0]);
    CHECK_EQ(wsconn_fd(con), fd);
    CHECK(fd_is_open(pipe_fds[0]));
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    CHECK(wsconn_subprotocol(con) == NULL);
    CHECK_EQ(wsconn_established(con), WSCONN_OK);
    CHECK_EQ(wsconn_buffered_amount(con), before);
}

static void test_reactor_pair(int release_server_on) {
    struct pair p;
    memset(&p, 0, sizeof p);
    p.release_server_on = release_server_on;
    p.reentrant_dispatch_rc = 1;
    p.release_in_dispatch_rc = 1;
    p.r = wsconn_reactor_create();
    CHECK(p.r != NULL);
    if (!p.r) return;
    wsconn_acceptor_t *acc = wsconn_acceptor_create(p.r);
    wsconn_acceptor_set_accept_func(acc, pair_accept, &p);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/api?null=1", wsconn_acceptor_port(acc));

    p.client = wsconn_create(p.r);
    wsconn_set_build_func(p.client, pair_client_build, &p);
    wsconn_set_message_func(p.client, pair_client_message, &p);
    wsconn_set_close_ex_func(p.client, pair_client_close, &p);
    CHECK_EQ(wsconn_connect(p.client, url), WSCONN_OK);
    CHECK(wsconn_fd(p.client) >= 0);
    CHECK_EQ(wsconn_connect(p.client, url), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_established(p.client), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_send_text(p.client, "early", 5), WSCONN_ERR_NOT_OPEN);
    CHECK(run_until(p.r, &p.client_built, 5000));
    CHECK(run_until(p.r, &p.server_built, 5000));
    CHECK_EQ(p.reentrant_dispatch_rc, WSCONN_ERR_REENTRANT);
    CHECK_EQ(p.release_in_dispatch_rc, WSCONN_ERR_STATE);
    if (!p.client_built || !p.server_built) goto out;

    bad_values_on_open(p.client);
    bad_values_on_open(p.server);
    CHECK_EQ(wsconn_pause_read(p.server), WSCONN_OK);
    CHECK_EQ(wsconn_resume_read(p.server), WSCONN_OK);

    /* Messages still flow after all that. */
    CHECK_EQ(wsconn_send_text(p.client, "hello", 5), WSCONN_OK);
    CHECK(wsconn_buffered_amount(p.client) > 0); /* written at the end of the turn */
    CHECK_EQ(wsconn_send(p.client, "gbase", 5), WSCONN_OK);
    CHECK_EQ(wsconn_send(p.client, NULL, 0), WSCONN_OK);
    CHECK_EQ(wsconn_send_fragment(p.client, WSCONN_MSG_TEXT, "fr", 2, 0), WSCONN_OK);
    CHECK_EQ(wsconn_send_text(p.client, "x", 1), WSCONN_ERR_INVALID_ARGUMENT); /* inside a fragmented one */
    CHECK_EQ(wsconn_ping(p.client, "p", 1), WSCONN_OK);
    CHECK_EQ(wsconn_send_fragment(p.client, WSCONN_MSG_TEXT, "ag", 2, 1), WSCONN_OK);
    if (!release_server_on) {
        double t0 = now_ms();
        while (p.messages < 4 && now_ms() - t0 < 5000) CHECK(wsconn_reactor_dispatch(p.r, 20) >= 0);
        CHECK_EQ(p.messages, 4);
        CHECK(strcmp(p.last, "frag") == 0);
        CHECK_EQ(wsconn_buffered_amount(p.client), 0);

        /* A clean close; afterwards everything is refused with CLOSED. */
        CHECK_EQ(wsconn_close(p.client, 4000, "bye"), WSCONN_OK);
        CHECK_EQ(wsconn_established(p.client), WSCONN_ERR_CLOSED);
        CHECK_EQ(wsconn_close(p.client, 1000, NULL), WSCONN_ERR_CLOSED);
        CHECK_EQ(wsconn_send_text(p.client, "x", 1), WSCONN_ERR_CLOSED);
        CHECK_EQ(wsconn_send(p.client, "x", 1), WSCONN_ERR_CLOSED);
        CHECK_EQ(wsconn_ping(p.client, NULL, 0), WSCONN_ERR_CLOSED);
        CHECK(run_until(p.r, &p.client_closed, 5000));
        CHECK(run_until(p.r, &p.server_closed, 5000));
        CHECK_EQ(p.client_close_code, 4000);
        CHECK_EQ(p.server_close_code, 4000);
        CHECK(strcmp(p.server_close_reason, "bye") == 0);
        CHECK_EQ(wsconn_fd(p.client), -1);
        /* The connection is over: sends are refused as CLOSED (documented:
         * "a close frame was already sent"), not as NOT_OPEN. */
        CHECK_EQ(wsconn_send_text(p.client, "x", 1), WSCONN_ERR_CLOSED);
        CHECK_EQ(wsconn_established(p.client), WSCONN_ERR_CLOSED);
    } else {
        /* The server released itself (dropping the output it had queued,
         * the echoes of earlier messages of the same turn): the client sees
         * TCP drop (1006). */
        CHECK(run_until(p.r, &p.client_closed, 5000));
        CHECK(p.messages < release_server_on);
        CHECK_EQ(p.server_messages, release_server_on);
        CHECK_EQ(p.client_close_code, 1006);
        CHECK_EQ(p.server_closed, 0); /* released: no close callback */
        CHECK(p.server == NULL);
    }
    CHECK_EQ(p.client_closed, 1);
    CHECK(p.server_closed <= 1);
    /* stop after the end: nothing left to stop, no callback. */
    int rc = wsconn_stop(p.client);
    CHECK(rc == WSCONN_OK || rc == WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_stop(p.client), WSCONN_ERR_STATE);
    CHECK_EQ(p.client_closed, 1);

out:
    CHECK_EQ(wsconn_release(p.client), WSCONN_OK);
    if (p.server) CHECK_EQ(wsconn_release(p.server), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_release(acc), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_release(p.r), WSCONN_OK);
}

/* A client connecting to a port nobody listens on: the close callback
 * (1006) follows, never the build callback; the fd is released. */
static void test_connect_refused(void) {
    struct pair p;
    memset(&p, 0, sizeof p);
    p.r = wsconn_reactor_create();
    /* A port that was free a moment ago. */
    wsconn_acceptor_t *acc = wsconn_acceptor_create(p.r);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", wsconn_acceptor_port(acc));
    CHECK_EQ(wsconn_acceptor_release(acc), WSCONN_OK);
    p.client = wsconn_create(p.r);
    wsconn_set_build_func(p.client, pair_client_build, &p);
    wsconn_set_close_ex_func(p.client, pair_client_close, &p);
    int rc = wsconn_connect(p.client, url);
    if (rc == WSCONN_OK) {
        CHECK(run_until(p.r, &p.client_closed, 5000));
        CHECK_EQ(p.client_close_code, 1006);
    } else {
        CHECK_EQ(rc, WSCONN_ERR_IO);
        CHECK_EQ(p.client_closed, 0);
    }
    CHECK_EQ(p.client_built, 0);
    CHECK_EQ(wsconn_fd(p.client), -1);
    CHECK_EQ(wsconn_release(p.client), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_release(p.r), WSCONN_OK);
}

/* Releasing the reactor first detaches its objects; they are released after. */
static void test_reactor_released_first(void) {
    wsconn_reactor_t *r = wsconn_reactor_create();
    wsconn_acceptor_t *acc = wsconn_acceptor_create(r);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    wsconn_t *c = wsconn_create(r);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", wsconn_acceptor_port(acc));
    CHECK_EQ(wsconn_connect(c, url), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_release(r), WSCONN_OK);
    CHECK_EQ(wsconn_fd(c), -1);
    CHECK_EQ(wsconn_send_text(c, "x", 1), WSCONN_ERR_NOT_OPEN);
    CHECK_EQ(wsconn_start(c), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_connect(c, url), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_fd(c), -1); /* a refused connect leaves no (stale) fd */
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_release(c), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_release(acc), WSCONN_OK);
}

/* ------------------------------------------------------------------ */
/* permessage-deflate: the config switches and their argument checks, */
/* then a client and a server session agreeing in memory and sending  */
/* compressed messages each way, with the per-message flags.           */

struct inbox {
    int messages;
    size_t len;
    uint8_t data[8192];
};

static void cb_inbox(wsconn_session_t *s, void *arg, int type, const uint8_t *data, size_t len) {
    (void)s;
    (void)type;
    struct inbox *box = arg;
    box->messages++;
    box->len = len < sizeof box->data ? len : sizeof box->data;
    memcpy(box->data, data, box->len);
}

/* Moves everything `from` queued into `to`; returns the bytes moved. */
static size_t pump(wsconn_session_t *from, wsconn_session_t *to) {
    const uint8_t *out = NULL;
    size_t len = wsconn_session_output(from, &out);
    if (len == 0) return 0;
    uint8_t *copy = malloc(len);
    CHECK(copy != NULL);
    if (!copy) return 0;
    memcpy(copy, out, len);
    CHECK_EQ(wsconn_session_consume(from, len), WSCONN_OK);
    CHECK_EQ(wsconn_session_feed(to, copy, len), WSCONN_OK);
    free(copy);
    return len;
}

static void test_deflate(void) {
    CHECK_EQ(wsconn_config_set_deflate(NULL, WSCONN_DEFLATE_SHARED), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_deflate_window_bits(NULL, 10, 10), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_deflate_context_takeover(NULL, 1, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_deflate_level(NULL, 1, 8), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_deflate_min_size(NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_deflate_idle_ms(NULL, 10), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_deflate_max_ratio(NULL, 10), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_inflate_ratio_closes(NULL), 0);
    CHECK_EQ(wsconn_session_trim_compression(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_send_ex(NULL, WSCONN_MSG_TEXT, "x", 1, WSCONN_SEND_COMPRESS), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_send_ex(NULL, WSCONN_MSG_TEXT, (const uint8_t *)"x", 1, 0), WSCONN_ERR_NULL);
    char text[256];
    CHECK_EQ(wsconn_extensions(NULL, text, sizeof text), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_extensions(NULL, text, sizeof text), WSCONN_ERR_NULL);

    wsconn_config_t *cfg = wsconn_config_new();
    /* Settings of a mode need the mode on first. */
    CHECK_EQ(wsconn_config_set_deflate_window_bits(cfg, 10, 10), WSCONN_ERR_DEFLATE_OFF);
    CHECK_EQ(wsconn_config_set_deflate_context_takeover(cfg, 1, 1), WSCONN_ERR_DEFLATE_OFF);
    CHECK_EQ(wsconn_config_set_deflate_level(cfg, 1, 8), WSCONN_ERR_DEFLATE_OFF);
    CHECK_EQ(wsconn_config_set_deflate_min_size(cfg, 0), WSCONN_ERR_DEFLATE_OFF);
    CHECK_EQ(wsconn_config_set_deflate_max_ratio(cfg, 0), WSCONN_ERR_DEFLATE_OFF);
    CHECK_EQ(wsconn_config_set_deflate(cfg, 3), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_deflate(cfg, -1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_deflate(cfg, WSCONN_DEFLATE_DEDICATED), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_deflate_window_bits(cfg, 7, 10), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_deflate_window_bits(cfg, 10, 16), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_deflate_window_bits(cfg, -1, 10), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_deflate_level(cfg, 10, 8), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_deflate_level(cfg, 1, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_set_deflate_window_bits(cfg, 10, 11), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_deflate_level(cfg, 6, 4), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_deflate_context_takeover(cfg, 1, 0), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_deflate_min_size(cfg, 32), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_deflate_idle_ms(cfg, 0), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_deflate_max_ratio(cfg, 100), WSCONN_OK);

    struct inbox at_server, at_client;
    memset(&at_server, 0, sizeof at_server);
    memset(&at_client, 0, sizeof at_client);
    wsconn_session_callbacks_t cb;
    memset(&cb, 0, sizeof cb);
    cb.on_message = cb_inbox;
    wsconn_session_t *server = wsconn_session_server_new(cfg, &cb, &at_server);
    wsconn_session_t *client = wsconn_session_client_new(cfg, "localhost", "/", &cb, &at_client);
    wsconn_config_free(cfg);
    CHECK(server != NULL && client != NULL);
    if (!server || !client) return;
    /* Before the handshake: nothing agreed. */
    CHECK_EQ(wsconn_session_extensions(server, text, sizeof text), 0);
    CHECK(pump(client, server) > 0);
    CHECK(pump(server, client) > 0);
    CHECK_EQ(wsconn_session_state(client), WSCONN_STATE_OPEN);
    const char *agreed = "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; "
                         "client_max_window_bits=11";
    CHECK_EQ(wsconn_session_extensions(server, text, sizeof text), (int)strlen(agreed));
    CHECK(strcmp(text, agreed) == 0);
    CHECK_EQ(wsconn_session_extensions(client, text, sizeof text), (int)strlen(agreed));
    CHECK(strcmp(text, agreed) == 0);
    /* snprintf-like: truncated, NUL-terminated, the full length returned. */
    char small[8];
    CHECK_EQ(wsconn_session_extensions(client, small, sizeof small), (int)strlen(agreed));
    CHECK(strcmp(small, "permess") == 0);
    CHECK_EQ(wsconn_session_extensions(client, NULL, 0), (int)strlen(agreed));

    /* 4 KiB of repetitive text each way: compressed (RSV1), far smaller. */
    static char json[4096];
    for (size_t i = 0; i < sizeof json; i++) json[i] = "{\"id\":1,\"ok\":true},"[i % 19];
    CHECK_EQ(wsconn_session_send(server, WSCONN_MSG_TEXT, (const uint8_t *)json, sizeof json), WSCONN_OK);
    const uint8_t *out = NULL;
    size_t wire = wsconn_session_output(server, &out);
    CHECK(wire > 0 && wire < sizeof json / 4);
    CHECK(wire > 0 && (out[0] & 0x40) != 0);
    pump(server, client);
    CHECK_EQ(at_client.messages, 1);
    CHECK_EQ(at_client.len, sizeof json);
    CHECK(memcmp(at_client.data, json, sizeof json) == 0);
    CHECK_EQ(wsconn_session_send_ex(client, WSCONN_MSG_BINARY, (const uint8_t *)json, sizeof json, 0), WSCONN_OK);
    pump(client, server);
    CHECK_EQ(at_server.messages, 1);
    CHECK_EQ(at_server.len, sizeof json);
    /* WSCONN_SEND_NO_COMPRESS: as is; WSCONN_SEND_COMPRESS: even under min_size. */
    CHECK_EQ(wsconn_session_send_ex(server, WSCONN_MSG_TEXT, (const uint8_t *)json, 100, WSCONN_SEND_NO_COMPRESS),
             WSCONN_OK);
    CHECK_EQ(wsconn_session_output(server, &out), 102);
    CHECK_EQ(out[0], 0x81);
    pump(server, client);
    CHECK_EQ(wsconn_session_send_ex(server, WSCONN_MSG_TEXT, (const uint8_t *)json, 20, WSCONN_SEND_COMPRESS),
             WSCONN_OK);
    CHECK(wsconn_session_output(server, &out) > 0 && out[0] == 0xc1);
    pump(server, client);
    CHECK_EQ(at_client.messages, 3);
    CHECK_EQ(at_client.len, 20);
    CHECK_EQ(wsconn_session_send_ex(server, WSCONN_MSG_TEXT, (const uint8_t *)"x", 1, 3), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_send_ex(server, WSCONN_MSG_TEXT, (const uint8_t *)"\xff", 1, 0),
             WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_output(server, &out), 0);
    /* Trimmed between messages (server: its compressor; client: the server's
       stream down to its window), both still decode what follows. */
    CHECK_EQ(wsconn_session_trim_compression(server), WSCONN_OK);
    CHECK_EQ(wsconn_session_trim_compression(client), WSCONN_OK);
    CHECK_EQ(wsconn_session_send(server, WSCONN_MSG_TEXT, (const uint8_t *)json, sizeof json), WSCONN_OK);
    CHECK_EQ(wsconn_session_trim_compression(client), WSCONN_OK);
    pump(server, client);
    CHECK_EQ(at_client.messages, 4);
    CHECK_EQ(at_client.len, sizeof json);
    CHECK(memcmp(at_client.data, json, sizeof json) == 0);
    wsconn_session_free(server);
    wsconn_session_free(client);
}

/* ------------------------------------------------------------------ */
/* Topics, fd watches and timers: NULL and bad values.                  */

static void watch_noop(wsconn_reactor_t *r, int fd, int events, void *arg) {
    (void)r; (void)fd; (void)events; (void)arg;
}

static void timer_noop(wsconn_timer_t *t, void *arg) {
    (void)t; (void)arg;
}

static void test_pubsub_null(void) {
    CHECK_EQ(wsconn_subscribe(NULL, "t"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_unsubscribe(NULL, "t"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_is_subscribed(NULL, "t"), 0);
    CHECK_EQ(wsconn_publish(NULL, "t", WSCONN_MSG_TEXT, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_publish_except(NULL, "t", WSCONN_MSG_TEXT, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_publish_async(NULL, "t", WSCONN_MSG_TEXT, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_share_topics(NULL, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_topic_subscribers(NULL, "t"), 0);
    CHECK_EQ(wsconn_topic_count(NULL), 0);
    CHECK_EQ(wsconn_topic_set_policy(NULL, "t", WSCONN_SLOW_CLOSE), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_watch(NULL, 0, WSCONN_WATCH_READ, watch_noop, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_unwatch(NULL, 0), WSCONN_ERR_NULL);
    CHECK(wsconn_timer_create(NULL, timer_noop, NULL) == NULL);
    CHECK_EQ(wsconn_timer_start(NULL, 1, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_timer_stop(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_timer_release(NULL), WSCONN_OK);

    wsconn_reactor_t *r = wsconn_reactor_create();
    wsconn_t *c = wsconn_create(r);
    CHECK(wsconn_request_path(NULL) == NULL);
    CHECK(wsconn_request_path(c) == NULL); /* only inside the build callback */
    CHECK_EQ(wsconn_subscribe(c, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_subscribe(c, "t"), WSCONN_ERR_STATE); /* not started */
    CHECK_EQ(wsconn_subscribe(c, "\xff"), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_unsubscribe(c, "t"), WSCONN_OK);
    CHECK_EQ(wsconn_is_subscribed(c, "t"), 0);
    CHECK_EQ(wsconn_publish_except(c, "t", WSCONN_MSG_TEXT, "x", 1), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_publish(r, NULL, WSCONN_MSG_TEXT, "x", 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_publish(r, "t", 7, "x", 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_publish(r, "t", WSCONN_MSG_TEXT, "\xff", 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_publish(r, "t", WSCONN_MSG_BINARY, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_publish(r, "t", WSCONN_MSG_BINARY, NULL, 0), 0);
    CHECK_EQ(wsconn_publish_async(r, "t", 0, "x", 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_publish_async(r, "t", WSCONN_MSG_TEXT, "x", 1), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_share_topics(r, r), WSCONN_OK);
    CHECK_EQ(wsconn_topic_set_policy(r, "t", 9), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_topic_set_policy(r, "t", WSCONN_SLOW_CLOSE), WSCONN_OK);
    CHECK_EQ(wsconn_topic_subscribers(r, "t"), 0);
    CHECK_EQ(wsconn_topic_count(r), 0);
    CHECK_EQ(wsconn_reactor_watch(r, -1, WSCONN_WATCH_READ, watch_noop, NULL), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_reactor_watch(r, 0, 8, watch_noop, NULL), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_reactor_watch(r, 0, WSCONN_WATCH_READ, NULL, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_unwatch(r, 12345), WSCONN_ERR_STATE);
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(wsconn_reactor_watch(r, fds[0], WSCONN_WATCH_READ, watch_noop, NULL), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_watch(r, fds[0], 0, watch_noop, NULL), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_unwatch(r, fds[0]), WSCONN_OK);
    /* Watched when the reactor goes: freed with it, the fd stays open. */
    CHECK_EQ(wsconn_reactor_watch(r, fds[0], WSCONN_WATCH_READ, watch_noop, NULL), WSCONN_OK);
    CHECK(wsconn_timer_create(r, NULL, NULL) == NULL);
    wsconn_timer_t *t = wsconn_timer_create(r, timer_noop, NULL);
    CHECK(t != NULL);
    CHECK_EQ(wsconn_timer_start(t, 1000, 0), WSCONN_OK);
    CHECK_EQ(wsconn_timer_stop(t), WSCONN_OK);
    CHECK_EQ(wsconn_timer_start(t, 1000, 10), WSCONN_OK);
    CHECK_EQ(wsconn_release(c), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_dispatch(r, 0) >= 0, 1); /* runs the async publish: nobody */
    CHECK_EQ(wsconn_reactor_release(r), WSCONN_OK);
    CHECK_EQ(wsconn_timer_start(t, 1, 0), WSCONN_ERR_STATE); /* its reactor is gone */
    CHECK_EQ(wsconn_timer_release(t), WSCONN_OK);
    CHECK_EQ(fd_is_open(fds[0]), 1);
    close(fds[0]);
    close(fds[1]);
}

/* ------------------------------------------------------------------ */
/* Who may connect: NULL and invalid arguments, and live objects with no  */
/* decision to take (the behaviour is tested by tests/c/upgrade_test.c). */

static int upgrade_noop(wsconn_t *con, void *arg) {
    (void)con;
    (void)arg;
    return WSCONN_UPGRADE_ACCEPT;
}

static int session_upgrade_noop(wsconn_session_t *s, void *arg) {
    (void)s;
    (void)arg;
    return WSCONN_UPGRADE_ACCEPT;
}

static void test_upgrade_null(void) {
    static const wsconn_header_t header[] = {{"Set-Cookie", "a=1"}};
    const char *name = NULL, *value = NULL;
    char buf[64];
    size_t len = 7;

    /* NULL objects. */
    wsconn_set_upgrade_func(NULL, upgrade_noop, NULL);
    CHECK_EQ(wsconn_upgrade_accept(NULL, NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_upgrade_reject(NULL, 403, NULL, 0, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_upgrade_pending(NULL), 0);
    CHECK_EQ(wsconn_reactor_refuse_pending(NULL, 503), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_peer_address(NULL, buf, sizeof buf), WSCONN_ERR_NULL);
    CHECK(wsconn_tls_server_name(NULL) == NULL);
    CHECK(wsconn_tls_peer_certificate(NULL, 0, &len) == NULL);
    CHECK_EQ(len, 7);
    CHECK(wsconn_request_method(NULL) == NULL);
    CHECK(wsconn_request_target(NULL) == NULL);
    CHECK(wsconn_request_header(NULL, "Host", 0) == NULL);
    CHECK_EQ(wsconn_request_header_count(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_request_header_at(NULL, 0, &name, &value), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_request_subprotocol(NULL, 0, buf, sizeof buf), WSCONN_ERR_NULL);
    wsconn_session_set_upgrade_func(NULL, session_upgrade_noop, NULL);
    CHECK_EQ(wsconn_session_upgrade_accept(NULL, NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_upgrade_reject(NULL, 403, NULL, 0, NULL, 0), WSCONN_ERR_NULL);
    CHECK(wsconn_session_request_method(NULL) == NULL);
    CHECK(wsconn_session_request_target(NULL) == NULL);
    CHECK(wsconn_session_request_header(NULL, "Host", 0) == NULL);
    CHECK_EQ(wsconn_session_request_header_count(NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_request_header_at(NULL, 0, &name, &value), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_request_subprotocol(NULL, 0, buf, sizeof buf), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_set_limits(NULL, 1, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_set_proxy_protocol(NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_add_allowed_origin(NULL, "https://a.test"), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_config_set_require_origin(NULL, 1), WSCONN_ERR_NULL);
    CHECK(wsconn_accepted_take(-1) == NULL); /* outside an accept callback */
    CHECK(wsconn_accepted_take(0) == NULL);
    CHECK_EQ(wsconn_accepted_fd(NULL), -1);
    wsconn_accepted_free(NULL);
    CHECK_EQ(wsconn_set_accepted(NULL, NULL), WSCONN_ERR_NULL);

    /* Origins: scheme://host[:port] only. */
    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_config_add_allowed_origin(cfg, NULL), WSCONN_ERR_NULL);
    static const char *bad_origins[] = {"", "a.test", "https://", "https://a.test/path", "ftp:/a", "https://a b"};
    for (size_t i = 0; i < sizeof bad_origins / sizeof *bad_origins; i++)
        CHECK_EQ(wsconn_config_add_allowed_origin(cfg, bad_origins[i]), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_config_add_allowed_origin(cfg, "https://A.test:8443"), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_require_origin(cfg, 1), WSCONN_OK);
    wsconn_config_free(cfg);

    /* Live objects with nothing being decided. */
    wsconn_reactor_t *r = wsconn_reactor_create();
    wsconn_t *con = wsconn_create(r);
    wsconn_set_upgrade_func(con, NULL, NULL);
    wsconn_set_upgrade_func(con, upgrade_noop, NULL);
    CHECK_EQ(wsconn_upgrade_accept(con, NULL, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_upgrade_accept(con, NULL, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_upgrade_accept(con, NULL, header, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_upgrade_reject(con, 403, NULL, 0, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_upgrade_reject(con, 403, NULL, 0, NULL, 3), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_upgrade_reject(con, -1, NULL, 0, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_upgrade_pending(con), 0);
    CHECK_EQ(wsconn_peer_address(con, buf, sizeof buf), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_peer_address(con, NULL, 0), WSCONN_ERR_NULL);
    CHECK(wsconn_tls_server_name(con) == NULL);
    CHECK(wsconn_tls_peer_certificate(con, 0, NULL) == NULL);
    CHECK(wsconn_tls_peer_certificate(con, 0, &len) == NULL);
    CHECK(wsconn_request_method(con) == NULL);
    CHECK(wsconn_request_target(con) == NULL);
    CHECK(wsconn_request_header(con, NULL, 0) == NULL);
    CHECK(wsconn_request_header(con, "Host", 0) == NULL);
    CHECK_EQ(wsconn_request_header_count(con), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_request_header_at(con, 0, NULL, &value), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_request_header_at(con, 0, &name, &value), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_request_subprotocol(con, 0, NULL, 4), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_request_subprotocol(con, 0, buf, sizeof buf), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_set_accepted(con, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_refuse_pending(r, 399), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_reactor_refuse_pending(r, 600), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_reactor_refuse_pending(r, 503), 0);
    wsconn_acceptor_t *acc = wsconn_acceptor_create(r);
    CHECK_EQ(wsconn_acceptor_set_limits(acc, 10, 2), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_set_proxy_protocol(acc, 1), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_set_limits(acc, 10, 2), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_set_proxy_protocol(acc, 0), WSCONN_ERR_STATE);
    wsconn_acceptor_release(acc);
    wsconn_release(con);
    wsconn_reactor_release(r);

    wsconn_session_t *s = wsconn_session_server_new(NULL, NULL, NULL);
    wsconn_session_set_upgrade_func(s, session_upgrade_noop, NULL);
    wsconn_session_set_upgrade_func(s, NULL, NULL);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, NULL, 2), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_upgrade_reject(s, 403, NULL, 0, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_upgrade_reject(s, 403, NULL, 1, NULL, 0), WSCONN_ERR_NULL);
    CHECK(wsconn_session_request_method(s) == NULL);
    CHECK(wsconn_session_request_target(s) == NULL);
    CHECK(wsconn_session_request_header(s, NULL, 0) == NULL);
    CHECK_EQ(wsconn_session_request_header_count(s), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_session_request_header_at(s, 0, &name, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_request_header_at(s, 0, &name, &value), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_session_request_subprotocol(s, 0, NULL, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_request_subprotocol(s, 0, NULL, 0), WSCONN_ERR_STATE);
    wsconn_session_free(s);
}

/* ------------------------------------------------------------------ */
/* Operations: drain, a handed-over socket, counters, the log.          */

static int drained_calls;
static size_t drained_cut = 99;

static void on_drained(wsconn_reactor_t *r, void *arg, size_t cut) {
    (void)r;
    (void)arg;
    drained_calls++;
    drained_cut = cut;
}

static void log_noop(void *arg, int level, int event, wsconn_t *con, const char *peer, const char *message) {
    (void)arg; (void)level; (void)event; (void)con; (void)peer; (void)message;
}

static void test_operations(void) {
    CHECK_EQ(wsconn_reactor_drain(NULL, 0, on_drained, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_acceptor_start_fd(NULL, 3), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_stats(NULL, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_stats_add(NULL, NULL), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_stats_prometheus(NULL, 0, NULL, 0), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_set_log_func(NULL, log_noop, NULL, WSCONN_LOG_INFO), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_set_log_rate(NULL, 5), WSCONN_ERR_NULL);
    CHECK(strcmp(wsconn_log_event_name(WSCONN_LOG_HANDSHAKE_REFUSED), "handshake_refused") == 0);
    CHECK(strcmp(wsconn_log_event_name(WSCONN_LOG_RECONNECT_WAITING), "reconnect_waiting") == 0);
    CHECK(strcmp(wsconn_log_event_name(0), "unknown") == 0);
    CHECK(strcmp(wsconn_log_event_name(-5), "unknown") == 0);
    CHECK_EQ(wsconn_listen_fds(0), 0); /* no LISTEN_PID here */

    wsconn_reactor_t *r = wsconn_reactor_create();
    wsconn_stats_t st;
    CHECK_EQ(wsconn_reactor_stats(r, NULL, sizeof st), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_reactor_stats(r, &st, 2), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_reactor_stats(r, &st, sizeof st), WSCONN_OK);
    CHECK_EQ(st.size, sizeof st);
    CHECK_EQ(st.connections_open, 0);
    CHECK_EQ(st.draining, 0);
    wsconn_stats_t total = {.size = sizeof total};
    CHECK_EQ(wsconn_stats_add(&total, &st), WSCONN_OK);
    char small[16];
    int len = wsconn_stats_prometheus(&total, WSCONN_METRICS_PROCESS, NULL, 0);
    CHECK(len > 100);
    CHECK_EQ(wsconn_stats_prometheus(&total, 0, NULL, 5), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_stats_prometheus(&total, 8, small, sizeof small), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_stats_prometheus(&total, 0, small, sizeof small) > (int)sizeof small, 1);
    CHECK_EQ(small[sizeof small - 1], 0);
    CHECK_EQ(wsconn_reactor_set_log_func(r, log_noop, NULL, 7), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_reactor_set_log_func(r, log_noop, NULL, WSCONN_LOG_DEBUG), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_set_log_func(r, NULL, NULL, WSCONN_LOG_ERROR), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_set_log_rate(r, 0), WSCONN_OK);

    /* A handed-over socket: a pipe is refused (and stays ours), a listening
     * socket is taken. */
    wsconn_acceptor_t *acc = wsconn_acceptor_create(r);
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(wsconn_acceptor_start_fd(acc, fds[0]), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_acceptor_start_fd(acc, -1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(fd_is_open(fds[0]), 1);
    close(fds[0]);
    close(fds[1]);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(wsconn_acceptor_start_fd(acc, lfd), WSCONN_ERR_INVALID_ARGUMENT); /* not listening yet */
    CHECK_EQ(listen(lfd, 8), 0);
    socklen_t slen = sizeof sin;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
    CHECK_EQ(wsconn_acceptor_start_fd(acc, lfd), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_port(acc), ntohs(sin.sin_port));
    CHECK_EQ(wsconn_acceptor_start_fd(acc, lfd), WSCONN_ERR_STATE); /* listening already */

    /* A drain with nothing to end: the function runs at the next turn's end,
     * once; then the reactor takes nothing new. */
    CHECK_EQ(wsconn_reactor_drain(r, 1000, on_drained, NULL), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_port(acc), WSCONN_ERR_STATE); /* stopped at once */
    CHECK_EQ(wsconn_reactor_drain(r, 0, on_drained, NULL), WSCONN_OK); /* sooner: allowed */
    CHECK_EQ(drained_calls, 0);
    CHECK_EQ(wsconn_reactor_dispatch(r, 1000) >= 0, 1);
    CHECK_EQ(drained_calls, 1);
    CHECK_EQ(drained_cut, 0);
    CHECK_EQ(wsconn_reactor_dispatch(r, 0) >= 0, 1);
    CHECK_EQ(drained_calls, 1);
    CHECK_EQ(wsconn_reactor_drain(r, 0, on_drained, NULL), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_ERR_STATE);
    wsconn_t *c = wsconn_create(r);
    CHECK_EQ(wsconn_connect(c, "ws://127.0.0.1:9/"), WSCONN_ERR_STATE);
    CHECK_EQ(wsconn_reactor_stats(r, &st, sizeof st), WSCONN_OK);
    CHECK_EQ(st.draining, 1);
    CHECK_EQ(wsconn_release(c), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_release(acc), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_release(r), WSCONN_OK);
}

int main(void) {
    test_strerror_version();
    test_config();
    test_session_null();
    test_session_bad_values();
    test_free_in_callback();
    test_reentrant_feed();
    test_full_queues_nothing();
    test_tampered_echo_is_refused();
    test_deflate();
    test_reactor_null();
    {
        wsconn_reactor_t *r = wsconn_reactor_create();
        test_client_null(r);
        wsconn_reactor_release(r);
    }
    test_reactor_objects();
    test_reactor_pair(0);
    test_reactor_pair(2);
    test_connect_refused();
    test_reactor_released_first();
    test_pubsub_null();
    test_upgrade_null();
    test_operations();
    return test_summary();
}
