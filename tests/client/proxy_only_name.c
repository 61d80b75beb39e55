/*
 * Preloaded into the SOCKS5 proxy of the client tests (microsocks): its
 * getaddrinfo resolves "wsconn-proxy-only.test" to 127.0.0.1, a name no
 * other resolver knows, so that a client reaching that host through the
 * proxy shows that the proxy, not the client, resolved it (socks5h://).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    static getaddrinfo_fn real;
    if (real == NULL)
        real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (node != NULL && strcmp(node, "wsconn-proxy-only.test") == 0)
        node = "127.0.0.1";
    return real(node, service, hints, res);
}
