/*
 * hiredis_wsconn.h - runs a hiredis asynchronous context on a wsconn reactor,
 * through wsconn_reactor_watch, the way hiredis's own adapters run it on
 * libevent or libuv (same shape as <hiredis/adapters/libevent.h>).
 *
 *   redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", 6379);
 *   if (ac->err == 0) redisWsconnAttach(ac, reactor);
 *
 * hiredis then asks for read and write interest through the hooks below,
 * and the reactor calls back while the socket is ready (level-triggered).
 * When hiredis frees the context (redisAsyncFree, or a disconnect), the
 * cleanup hook stops the watch before hiredis closes the socket.
 */
#ifndef HIREDIS_WSCONN_H
#define HIREDIS_WSCONN_H

#include <stdlib.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "wsconn.h"

typedef struct redisWsconnEvents {
    redisAsyncContext *context;
    wsconn_reactor_t *reactor;
    int fd;
    int events;     /* WSCONN_WATCH_READ | WSCONN_WATCH_WRITE wanted */
    int handling;   /* inside redisWsconnHandle */
    int freed;      /* cleanup ran while handling: free when it returns */
} redisWsconnEvents;

static void redisWsconnHandle(wsconn_reactor_t *reactor, int fd, int events, void *arg) {
    (void)reactor;
    (void)fd;
    redisWsconnEvents *e = (redisWsconnEvents *)arg;
    e->handling = 1;
    /* Either call may end the context (and run the cleanup hook). */
    if (events & WSCONN_WATCH_READ)
        redisAsyncHandleRead(e->context);
    if (!e->freed && (events & WSCONN_WATCH_WRITE))
        redisAsyncHandleWrite(e->context);
    e->handling = 0;
    if (e->freed)
        free(e);
}

static void redisWsconnUpdate(redisWsconnEvents *e, int add, int remove) {
    int events = (e->events | add) & ~remove;
    if (events == e->events)
        return;
    e->events = events;
    wsconn_reactor_watch(e->reactor, e->fd, events, redisWsconnHandle, e);
}

static void redisWsconnAddRead(void *privdata) {
    redisWsconnUpdate((redisWsconnEvents *)privdata, WSCONN_WATCH_READ, 0);
}

static void redisWsconnDelRead(void *privdata) {
    redisWsconnUpdate((redisWsconnEvents *)privdata, 0, WSCONN_WATCH_READ);
}

static void redisWsconnAddWrite(void *privdata) {
    redisWsconnUpdate((redisWsconnEvents *)privdata, WSCONN_WATCH_WRITE, 0);
}

static void redisWsconnDelWrite(void *privdata) {
    redisWsconnUpdate((redisWsconnEvents *)privdata, 0, WSCONN_WATCH_WRITE);
}

static void redisWsconnCleanup(void *privdata) {
    redisWsconnEvents *e = (redisWsconnEvents *)privdata;
    wsconn_reactor_unwatch(e->reactor, e->fd);
    if (e->handling)
        e->freed = 1;
    else
        free(e);
}

/* Runs `ac` on `reactor` (its thread). REDIS_ERR if something is attached
 * already or the fd cannot be watched. */
static int redisWsconnAttach(redisAsyncContext *ac, wsconn_reactor_t *reactor) {
    if (ac->ev.data != NULL)
        return REDIS_ERR;
    redisWsconnEvents *e = (redisWsconnEvents *)calloc(1, sizeof *e);
    if (e == NULL)
        return REDIS_ERR;
    e->context = ac;
    e->reactor = reactor;
    e->fd = ac->c.fd;
    /* Writable first: that is how hiredis learns the connect completed. */
    e->events = WSCONN_WATCH_READ | WSCONN_WATCH_WRITE;
    if (wsconn_reactor_watch(reactor, e->fd, e->events, redisWsconnHandle, e) != WSCONN_OK) {
        free(e);
        return REDIS_ERR;
    }
    ac->ev.addRead = redisWsconnAddRead;
    ac->ev.delRead = redisWsconnDelRead;
    ac->ev.addWrite = redisWsconnAddWrite;
    ac->ev.delWrite = redisWsconnDelWrite;
    ac->ev.cleanup = redisWsconnCleanup;
    ac->ev.data = e;
    return REDIS_OK;
}

#endif /* HIREDIS_WSCONN_H */
