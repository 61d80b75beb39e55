/*
 * echo_check.c - a program outside the wsconn tree, built against an
 * installed wsconn by tests/install.rs (with pkg-config, shared and static,
 * and with CMake).  It checks that the header's version macros match the
 * library's wsconn_version(), connects to the ws:// URL it is given, sends
 * one text message and exits 0 once the echo came back and the closing
 * handshake finished.
 *
 * Usage: echo_check ws://HOST:PORT/PATH
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <wsconn.h>

#define MESSAGE "hello from an installed wsconn"

static int echoed; /* the echo came back intact */
static int done;   /* the connection is over */

static void on_build(int fd, void *arg)
{
    (void)fd;
    wsconn_send_text(arg, MESSAGE, strlen(MESSAGE));
}

static void on_message(wsconn_t *con, void *arg, int type, const uint8_t *data,
                       size_t len)
{
    (void)arg;
    echoed = type == WSCONN_MSG_TEXT && len == strlen(MESSAGE) &&
             memcmp(data, MESSAGE, len) == 0;
    wsconn_close(con, 1000, NULL);
}

static void on_close(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    done = 1;
}

static int versions_match(void)
{
    char macros[64];
    snprintf(macros, sizeof macros, "%d.%d.%d", WSCONN_VERSION_MAJOR,
             WSCONN_VERSION_MINOR, WSCONN_VERSION_PATCH);
    if (strcmp(WSCONN_VERSION_STRING, wsconn_version()) != 0 ||
        strncmp(macros, wsconn_version(), strlen(macros)) != 0) {
        fprintf(stderr, "echo_check: header %s (%s), library %s\n",
                WSCONN_VERSION_STRING, macros, wsconn_version());
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: echo_check ws://HOST:PORT/PATH\n");
        return 2;
    }
    if (!versions_match())
        return 1;

    wsconn_reactor_t *reactor = wsconn_reactor_create();
    wsconn_t *con = reactor ? wsconn_create(reactor) : NULL;
    if (con == NULL) {
        fprintf(stderr, "echo_check: cannot create a reactor and a connection\n");
        return 1;
    }
    wsconn_set_build_func(con, on_build, con);
    wsconn_set_message_func(con, on_message, NULL);
    wsconn_set_close_func(con, on_close, NULL);
    int rc = wsconn_connect(con, argv[1]);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "echo_check: connect %s: %s\n", argv[1], wsconn_strerror(rc));
        return 1;
    }

    time_t deadline = time(NULL) + 20;
    while (!done && time(NULL) < deadline)
        wsconn_reactor_dispatch(reactor, 100);
    int closed_cleanly = done && wsconn_close_error(con) == 0;

    wsconn_release(con);
    wsconn_reactor_release(reactor);
    if (!echoed || !closed_cleanly) {
        fprintf(stderr, "echo_check: echo %s, close %s\n", echoed ? "ok" : "missing",
                closed_cleanly ? "clean" : "not clean");
        return 1;
    }
    printf("echo_check: echo ok, wsconn %s\n", wsconn_version());
    return 0;
}
