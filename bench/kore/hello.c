/* SPDX-License-Identifier: MIT */
/*
 * Kore application module for bench/http_bench.sh: the two routes of
 * examples/hello.
 *
 *     GET /plaintext  ->  Hello, World!               (text/plain)
 *     GET /json       ->  {"message":"Hello, World!"}  (application/json)
 *
 * /json builds the object with Kore's own JSON API (kore_json_create_*,
 * kore_json_item_tobuf into a kore_buf) on every request, as TechEmpower's
 * rules ask; built with -DHELLO_JSON_CONST it sends a constant string, as
 * examples/hello and nginx do.  http_response copies the body into Kore's
 * send buffers, so the kore_buf is freed before returning.
 *
 * bench/servers.sh (start_kore) compiles it into the run's temp dir against
 * Debian's kore package (4.1, /usr/include/kore; the -D flags of
 * /usr/share/kore/features, so that the structures match the kore binary):
 *
 *     cc -O2 -shared -fPIC $(cat /usr/share/kore/features) -o DIR/hello.so hello.c
 *
 * and kore.conf.in loads it with `load DIR/hello.so`.
 */
#include <kore/kore.h>
#include <kore/http.h>

int page_plaintext(struct http_request *);
int page_json(struct http_request *);

static const char hello[] = "Hello, World!";

int
page_plaintext(struct http_request *req)
{
	http_response_header(req, "content-type", "text/plain");
	http_response(req, 200, hello, sizeof(hello) - 1);
	return (KORE_RESULT_OK);
}

int
page_json(struct http_request *req)
{
#if defined(HELLO_JSON_CONST)
	static const char body[] = "{\"message\":\"Hello, World!\"}";

	http_response_header(req, "content-type", "application/json");
	http_response(req, 200, body, sizeof(body) - 1);
#else
	struct kore_json_item	*obj;
	struct kore_buf		 buf;

	obj = kore_json_create_object(NULL, NULL);
	kore_json_create_string(obj, "message", hello);
	kore_buf_init(&buf, 64);
	kore_json_item_tobuf(obj, &buf);
	kore_json_item_free(obj);

	http_response_header(req, "content-type", "application/json");
	http_response(req, 200, buf.data, buf.offset);
	kore_buf_cleanup(&buf);
#endif
	return (KORE_RESULT_OK);
}
