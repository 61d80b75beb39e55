/*
 * epoll_echo.c - a single-threaded WebSocket echo server on the wsconn
 * sans-IO API.
 *
 * wsconn never touches a socket.  The program owns all the I/O:
 *
 *   read()  -> wsconn_session_feed()        bytes received from the peer
 *   read()==0 -> wsconn_session_feed_eof()  the peer closed its side of TCP
 *   wsconn_session_output() -> write() -> wsconn_session_consume()
 *                                           bytes the library wants sent
 *
 * Everything else (the HTTP upgrade, framing, unmasking, UTF-8 checks,
 * ping/pong and the close handshake) happens inside wsconn_session_feed(),
 * which reports complete messages through callbacks.  A connection is done
 * when the session wants neither to read nor to write.
 *
 * This file is the smallest complete event loop around that API:
 *
 *   - one listening socket on 127.0.0.1 (SO_REUSEADDR, non-blocking);
 *   - level-triggered epoll; EPOLLOUT is registered only while the session
 *     has output (wsconn_session_want_write), EPOLLIN only while it wants
 *     input (wsconn_session_want_read);
 *   - one server session per accepted connection, whose on_message callback
 *     sends every message back with the same type and bytes;
 *   - SIGINT/SIGTERM arrive through a signalfd and end the loop, after which
 *     every session, socket and allocation is released.
 *
 * Usage: epoll_echo [-z] [port]   (default 9001; 0 picks a free port)
 *   -z   permessage-deflate (shared mode: no context takeover)
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4(), SOCK_NONBLOCK, signalfd() */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsconn.h"

#define DEFAULT_PORT 9001
#define READ_BUFFER_SIZE (64 * 1024)
#define MAX_EVENTS 64

/* The sessions' config: NULL (the defaults) unless -z asks for compression. */
static wsconn_config_t *session_config;

/*
 * Backpressure needs no code here: wsconn_session_want_read turns 0 while a
 * client's unwritten output is at or over half the session's max output (16 MiB
 * by default), so the loop stops reading from a client that does not read its
 * echoes, and TCP flow control slows that client down.
 */

/* One accepted connection. */
struct client {
    int fd;
    wsconn_session_t *session;
    uint32_t events;             /* epoll interest currently registered */
    int failed;                  /* set when the connection must be dropped */
    struct client *prev, *next;  /* all live clients, freed at shutdown */
};

/*
 * The loop reads every socket into this one buffer.  wsconn_session_feed()
 * processes the bytes completely before it returns (it unmasks them in
 * place, so the buffer must be writable), and nothing refers to them after.
 */
static uint8_t read_buffer[READ_BUFFER_SIZE];

static int epoll_fd = -1;
static struct client *clients; /* head of the list of live clients */

/* epoll_event.data.ptr is a struct client *, or one of these two markers. */
static char listener_marker, signal_marker;

/* ------------------------------------------------------------------------ */
/* Session callbacks.  They run inside wsconn_session_feed().               */

static void on_message(wsconn_session_t *s, void *arg, int type,
                       const uint8_t *data, size_t len)
{
    struct client *c = arg;

    /* Echo: queue the same message back.  The data pointer is only valid
     * during this call, so send it now; wsconn copies it into its output. */
    int rc = wsconn_session_send(s, type, data, len);
    if (rc == WSCONN_OK || rc == WSCONN_ERR_CLOSED)
        return; /* CLOSED: a close was already sent; nothing more to echo */

    fprintf(stderr, "epoll_echo: fd %d: send: %s\n", c->fd, wsconn_strerror(rc));
    if (rc == WSCONN_ERR_FULL) {
        /* The echo does not fit in the output buffer (a huge message on top
         * of output already queued).  Dropping it silently would break the
         * echo contract, so end the connection with 1011 instead. */
        if (wsconn_session_close(s, 1011, "echo output buffer full") == WSCONN_OK)
            return;
    }
    c->failed = 1;
}

static void on_error(wsconn_session_t *s, void *arg, int error)
{
    struct client *c = arg;
    (void)s;
    /* The library has already queued what the peer should get (a close
     * frame or an HTTP error response); this is only for the log. */
    fprintf(stderr, "epoll_echo: fd %d: %s\n", c->fd, wsconn_strerror(error));
}

/* wsconn_session_server_new copies this struct; members left NULL are not
 * called.  Pings are answered and closes replied to by the library. */
static const wsconn_session_callbacks_t callbacks = {
    .on_message = on_message,
    .on_error = on_error,
};

/* ------------------------------------------------------------------------ */
/* Per-connection I/O.                                                      */

/* Write queued output until it is all written or the socket is full.
 * Returns 0, or -1 if the connection is broken. */
static int flush_output(struct client *c)
{
    const uint8_t *data;
    size_t len;

    while ((len = wsconn_session_output(c->session, &data)) > 0) {
        ssize_t n = write(c->fd, data, len);
        if (n > 0) {
            /* Partial writes are normal: tell wsconn what went out. */
            wsconn_session_consume(c->session, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0; /* socket buffer full: wait for EPOLLOUT */
        } else {
            if (n < 0 && errno != EPIPE && errno != ECONNRESET)
                fprintf(stderr, "epoll_echo: fd %d: write: %s\n", c->fd,
                        strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* The epoll interest this client needs right now. */
static uint32_t wanted_events(const struct client *c)
{
    uint32_t ev = 0;
    if (wsconn_session_want_read(c->session))
        ev |= EPOLLIN;
    if (wsconn_session_want_write(c->session))
        ev |= EPOLLOUT;
    return ev;
}

static int update_interest(struct client *c)
{
    uint32_t ev = wanted_events(c);
    if (ev == c->events)
        return 0;

    struct epoll_event e = { .events = ev, .data.ptr = c };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &e) < 0) {
        perror("epoll_echo: epoll_ctl(MOD)");
        return -1;
    }
    c->events = ev;
    return 0;
}

static void client_free(struct client *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next)
        c->next->prev = c->prev;

    close(c->fd); /* also removes it from the epoll set */
    wsconn_session_free(c->session);
    free(c);
}

static void client_new(int fd)
{
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "epoll_echo: out of memory\n");
        close(fd);
        return;
    }
    c->fd = fd;

    /* NULL config: default limits, no subprotocols, no compression. */
    c->session = wsconn_session_server_new(session_config, &callbacks, c);
    if (c->session == NULL) {
        fprintf(stderr, "epoll_echo: wsconn_session_server_new failed\n");
        close(fd);
        free(c);
        return;
    }

    /* A new server session waits for the client's HTTP request. */
    c->events = wanted_events(c);
    struct epoll_event e = { .events = c->events, .data.ptr = c };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &e) < 0) {
        perror("epoll_echo: epoll_ctl(ADD)");
        wsconn_session_free(c->session);
        close(fd);
        free(c);
        return;
    }

    c->next = clients;
    if (clients)
        clients->prev = c;
    clients = c;
}

/* Handle one epoll report for a client. */
static void client_event(struct client *c, uint32_t events)
{
    if (events & EPOLLERR) {
        c->failed = 1; /* socket error, e.g. connection reset */
    } else if (events & EPOLLIN) {
        ssize_t n = read(c->fd, read_buffer, sizeof read_buffer);
        if (n > 0) {
            /* Callbacks (on_message...) run in here.  A non-zero result is
             * the error that failed the session; on_error has reported it
             * and the library has queued its answer, which is still sent
             * below, after which the session wants neither read nor write. */
            wsconn_session_feed(c->session, read_buffer, (size_t)n);
        } else if (n == 0) {
            wsconn_session_feed_eof(c->session);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            if (errno != ECONNRESET)
                fprintf(stderr, "epoll_echo: fd %d: read: %s\n", c->fd,
                        strerror(errno));
            c->failed = 1;
        }
    } else if (events & EPOLLHUP) {
        c->failed = 1; /* peer gone while we were not reading */
    }

    /* Whatever happened, try to send what the session has queued now. */
    if (!c->failed && flush_output(c) < 0)
        c->failed = 1;

    if (c->failed || (!wsconn_session_want_read(c->session) &&
                      !wsconn_session_want_write(c->session))) {
        client_free(c);
        return;
    }
    if (update_interest(c) < 0)
        client_free(c);
}

/* ------------------------------------------------------------------------ */
/* Setup and the event loop.                                                */

static void accept_clients(int listen_fd)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("epoll_echo: accept4");
            return;
        }
        /* Small WebSocket frames should go out at once, not after Nagle's
         * delay. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        client_new(fd);
    }
}

/* Returns a non-blocking socket listening on 127.0.0.1:*port, or -1.
 * On success *port is the port actually bound (useful when it was 0). */
static int listen_on(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("epoll_echo: socket");
        return -1;
    }

    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        perror("epoll_echo: setsockopt(SO_REUSEADDR)");

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)*port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    socklen_t addr_len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &addr_len) < 0) {
        fprintf(stderr, "epoll_echo: cannot listen on 127.0.0.1:%d: %s\n",
                *port, strerror(errno));
        close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

static int parse_port(const char *s, int *port)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    int port = DEFAULT_PORT;
    int deflate = argc > 1 && strcmp(argv[1], "-z") == 0;
    if (deflate) {
        argc--;
        argv++;
    }
    if (argc > 2 || (argc == 2 && parse_port(argv[1], &port) < 0)) {
        fprintf(stderr, "usage: epoll_echo [-z] [port]   (default %d)\n", DEFAULT_PORT);
        return 2;
    }
    if (deflate) {
        session_config = wsconn_config_new();
        if (session_config == NULL ||
            wsconn_config_set_deflate(session_config, WSCONN_DEFLATE_SHARED) != WSCONN_OK) {
            fprintf(stderr, "epoll_echo: cannot enable permessage-deflate\n");
            wsconn_config_free(session_config);
            return 1;
        }
    }

    /* A write to a connection the peer has reset must return EPIPE, not
     * kill the process. */
    signal(SIGPIPE, SIG_IGN);

    /* Block SIGINT/SIGTERM and receive them as readable events on a
     * signalfd instead, so the loop notices them between two events and
     * can clean up; no async-signal-safety concerns. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stop_signals, NULL) < 0) {
        perror("epoll_echo: sigprocmask");
        return 1;
    }

    int status = 1;
    int listen_fd = -1;
    int signal_fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0) {
        perror("epoll_echo: signalfd");
        goto out;
    }

    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) {
        perror("epoll_echo: epoll_create1");
        goto out;
    }

    listen_fd = listen_on(&port);
    if (listen_fd < 0)
        goto out;

    struct epoll_event e = { .events = EPOLLIN, .data.ptr = &listener_marker };
    struct epoll_event se = { .events = EPOLLIN, .data.ptr = &signal_marker };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &e) < 0 ||
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, signal_fd, &se) < 0) {
        perror("epoll_echo: epoll_ctl(ADD)");
        goto out;
    }

    printf("epoll_echo listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    for (int running = 1; running;) {
        struct epoll_event events[MAX_EVENTS];
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_echo: epoll_wait");
            goto out;
        }
        /* Each fd appears at most once per batch, and handling one client
         * never frees another, so the pointers in the batch stay valid. */
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &listener_marker) {
                accept_clients(listen_fd);
            } else if (tag == &signal_marker) {
                struct signalfd_siginfo si;
                if (read(signal_fd, &si, sizeof si) == (ssize_t)sizeof si)
                    fprintf(stderr, "epoll_echo: caught %s, exiting\n",
                            strsignal((int)si.ssi_signo));
                running = 0;
            } else {
                client_event(tag, events[i].events);
            }
        }
    }
    status = 0;

out:
    /* Shutdown: drop every connection without a close handshake (a real
     * server might send 1001 "going away" first) and release everything. */
    while (clients)
        client_free(clients);
    if (listen_fd >= 0)
        close(listen_fd);
    if (epoll_fd >= 0)
        close(epoll_fd);
    if (signal_fd >= 0)
        close(signal_fd);
    wsconn_config_free(session_config);
    return status;
}
