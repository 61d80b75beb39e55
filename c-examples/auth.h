/*
 * auth.h - who may connect, for the example servers: a bearer token checked
 * in the upgrade callback.
 *
 * A client shows the token as "Authorization: Bearer TOKEN" or, since a
 * browser's WebSocket cannot set headers, as "access_token=TOKEN" in the
 * query of the URL. The comparison takes the same time wherever the first
 * difference lies (no timing leak of the token). A request without the
 * right token gets 401 with "WWW-Authenticate: Bearer".
 */
#ifndef WSCONN_EXAMPLES_AUTH_H
#define WSCONN_EXAMPLES_AUTH_H

#include <string.h>

#include "wsconn.h"

/* 1 if a[0..alen) equals b[0..blen), in time that depends on the lengths only. */
static int auth_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)(i < blen ? b[i] : 0);
    return diff == 0;
}

/* The value of `name` in the query of `target` (up to '&' or '#'), or NULL. */
static const char *auth_query_param(const char *target, const char *name, size_t *len)
{
    const char *q = strchr(target, '?');
    size_t nlen = strlen(name);
    while (q != NULL) {
        q++;
        if (strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
            const char *v = q + nlen + 1;
            *len = strcspn(v, "&#");
            return v;
        }
        q = strchr(q, '&');
    }
    return NULL;
}

/* 1 if the upgrade request being decided on `con` carries `token`. */
static int auth_has_token(wsconn_t *con, const char *token)
{
    size_t tlen = strlen(token), len;
    const char *h;
    for (size_t i = 0; (h = wsconn_request_header(con, "Authorization", i)) != NULL; i++)
        if (strncmp(h, "Bearer ", 7) == 0 && auth_equal(h + 7, strlen(h + 7), token, tlen))
            return 1;
    const char *target = wsconn_request_target(con);
    const char *v = target ? auth_query_param(target, "access_token", &len) : NULL;
    return v != NULL && auth_equal(v, len, token, tlen);
}

/* Refuses the upgrade being decided with 401. */
static int auth_refuse(wsconn_t *con)
{
    static const wsconn_header_t headers[] = {
        {"WWW-Authenticate", "Bearer"},
        {"Content-Type", "text/plain; charset=utf-8"},
    };
    static const char body[] = "a valid token is required\n";
    return wsconn_upgrade_reject(con, 401, headers, 2, body, sizeof body - 1);
}

#endif
