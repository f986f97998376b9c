/* The HTTP client's private pieces shared by its files: the response object
 * and its llhttp parser (response.c), used by the request task
 * (http_client.c).  Private to framework/client/. */
#ifndef CORIO_CLIENT_INTERNAL_H
#define CORIO_CLIENT_INTERNAL_H
#include "corio/http_client.h"
#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

struct corio_http_response {
    int status;
    char *hbuf; /* "name\0value\0" for each field, in order */
    size_t hlen, hcap;
    const char **fields; /* 2 * nfields pointers into hbuf, built at the end */
    size_t nfields;
    char *body;
    size_t blen, bcap;
};

/* One response being parsed from a connection. */
typedef struct corio__client_parse {
    llhttp_t parser;
    corio_http_response *resp;
    size_t max_header_bytes, max_headers, max_body;
    size_t head_bytes; /* status line + header bytes seen so far */
    int error;         /* a limit's code when a callback stopped the parser */
    bool head_request; /* the response has no body, whatever it says */
    bool done;         /* on_message_complete of the final response */
    bool keep_alive;   /* llhttp_should_keep_alive at its end */
} corio__client_parse;

/* Starts parsing a response (resp is created here).  Returns 0, CORIO_ENOMEM. */
int corio__client_parse_init(corio__client_parse *p, const corio_http_client_opts *o,
                             bool head_request);
/* Feeds n bytes.  Returns 0 (more wanted, or done: see p->done and *used,
 * the bytes consumed), CORIO_ERANGE (a limit), CORIO_EBADMSG. */
int corio__client_parse_feed(corio__client_parse *p, const char *data, size_t n, size_t *used);
/* The peer's input ended: completes a body delimited by the close.  Returns
 * 0 (p->done then tells whether the response is complete), or
 * CORIO_EBADMSG. */
int corio__client_parse_eof(corio__client_parse *p);
/* Takes the parsed response (indexes its fields).  Returns NULL on ENOMEM. */
corio_http_response *corio__client_parse_take(corio__client_parse *p);
/* Frees whatever the parser still owns. */
void corio__client_parse_release(corio__client_parse *p);
#endif
