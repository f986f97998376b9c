/* SPDX-License-Identifier: MIT */
/* gzip response compression without zlib (the build's choice: compress.c
 * when zlib is found, this file otherwise).  The API stays, so that a
 * program builds either way: a compressor cannot be made (CORIO_ENOTSUP),
 * the middleware only runs the rest of the chain, and res->gz is never
 * set, so response.c never calls the rest. */
#include "http/http_internal.h"

int corio_http_compress_new(corio_http_compress **out, const corio_http_compress_opts *opts) {
    (void)opts;
    return out ? CORIO_ENOTSUP : CORIO_EINVAL;
}

void corio_http_compress_free(corio_http_compress *gz) {
    (void)gz;
}

int corio_http_compress_middleware(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)req;
    (void)arg;
    if (!res || !next)
        return CORIO_EINVAL;
    return corio_next_call(next);
}

void corio_res_no_compress(corio_res *res) {
    (void)res;
}

size_t corio__gz_live_bytes(void) {
    return 0;
}

corio__gz_how corio__gz_send(corio_res *res, int status, const char *ctype, const void *body,
                             size_t len, corio__gz_out *out) {
    (void)res, (void)status, (void)ctype, (void)body, (void)len, (void)out;
    return CORIO__GZ_PLAIN;
}

int corio__gz_file(corio_res *res, const char *ctype, uint64_t length, bool *compress) {
    (void)res, (void)ctype, (void)length;
    *compress = false;
    return 0;
}

bool corio__gz_start(corio_res *res, int status, const char *ctype, bool length_known,
                     uint64_t length) {
    (void)res, (void)status, (void)ctype, (void)length_known, (void)length;
    return false;
}

int corio__gz_write(corio_res *res, const void *data, size_t len) {
    (void)res, (void)data, (void)len;
    return CORIO_ENOTSUP;
}

int corio__gz_finish(corio_res *res) {
    (void)res;
    return 0;
}

void corio__gz_release(corio_res *res) {
    (void)res;
}
