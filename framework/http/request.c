/* Request accessors: slices of the head, decoded path and query, body
 * reading. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_internal.h"
#include "net/stream_internal.h"

const char *corio__req_head(const corio_req *r) {
    if (r->head_copy)
        return r->head_copy;
    size_t len;
    return corio_stream_buffered(r->c->s, &len);
}

static corio_strv span(const corio_req *r, corio__span s) {
    return (corio_strv){corio__req_head(r) + s.off, s.len};
}

corio_strv corio_req_method(const corio_req *req) {
    return span(req, req->method);
}

corio_strv corio_req_target(const corio_req *req) {
    return span(req, req->target);
}

corio_strv corio_req_path(const corio_req *req) {
    return req->path;
}

corio_strv corio_req_query_string(const corio_req *req) {
    return req->query;
}

int corio_req_version_minor(const corio_req *req) {
    return req->minor;
}

static bool name_eq(corio_strv name, const char *want) {
    size_t n = strlen(want);
    return name.len == n && strncasecmp(name.ptr, want, n) == 0;
}

bool corio_req_header(const corio_req *req, const char *name, corio_strv *value) {
    const char *head = corio__req_head(req);
    for (size_t i = 0; i < req->nhdrs; i++) {
        corio_strv n = {head + req->hdrs[i].name.off, req->hdrs[i].name.len};
        if (name_eq(n, name)) {
            *value = (corio_strv){head + req->hdrs[i].value.off, req->hdrs[i].value.len};
            return true;
        }
    }
    return false;
}

size_t corio_req_header_count(const corio_req *req) {
    return req->nhdrs;
}

bool corio_req_header_at(const corio_req *req, size_t i, corio_strv *name, corio_strv *value) {
    if (i >= req->nhdrs)
        return false;
    const char *head = corio__req_head(req);
    *name = (corio_strv){head + req->hdrs[i].name.off, req->hdrs[i].name.len};
    *value = (corio_strv){head + req->hdrs[i].value.off, req->hdrs[i].value.len};
    return true;
}

bool corio_req_param(const corio_req *req, const char *name, corio_strv *value) {
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->params[i].name, name) == 0) {
            *value = req->params[i].value;
            return true;
        }
    }
    return false;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long corio__pct_decode(corio_strv s, char *dst, bool plus_is_space) {
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        char ch = s.ptr[i];
        if (ch == '%') {
            if (i + 2 >= s.len)
                return -1;
            int hi = hexval(s.ptr[i + 1]), lo = hexval(s.ptr[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (ch == '\0')
            return -1;
        dst[o++] = ch;
    }
    return (long)o;
}

bool corio_req_query(corio_req *req, const char *name, corio_strv *value) {
    corio_strv q = req->query;
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i <= q.len && q.len) {
        const char *amp = memchr(q.ptr + i, '&', q.len - i);
        size_t end = amp ? (size_t)(amp - q.ptr) : q.len;
        corio_strv pair = {q.ptr + i, end - i};
        const char *eq = memchr(pair.ptr, '=', pair.len);
        corio_strv key = {pair.ptr, eq ? (size_t)(eq - pair.ptr) : pair.len};
        corio_strv val = eq ? (corio_strv){eq + 1, pair.len - key.len - 1} : (corio_strv){"", 0};
        char *kbuf = corio__arena_alloc(&req->c->arena, key.len + 1);
        if (!kbuf)
            return false;
        long klen = corio__pct_decode(key, kbuf, true);
        if (klen == (long)nlen && memcmp(kbuf, name, nlen) == 0) {
            char *vbuf = corio__arena_alloc(&req->c->arena, val.len + 1);
            if (!vbuf)
                return false;
            long vlen = corio__pct_decode(val, vbuf, true);
            if (vlen < 0)
                return false;
            *value = (corio_strv){vbuf, (size_t)vlen};
            return true;
        }
        if (!amp)
            break;
        i = end + 1;
    }
    return false;
}

int corio_req_peer(const corio_req *req, char *buf, size_t len) {
    return corio_stream_peer_name(req->c->s, buf, len);
}

void *corio_req_alloc(corio_req *req, size_t n) {
    return corio__arena_alloc(&req->c->arena, n);
}
