/* SPDX-License-Identifier: MIT */
/* corio.h — the umbrella header: everything corio offers.
 *
 * corio is an asynchronous HTTP/TCP server framework in C whose ideas are
 * Python asyncio's: an event loop (libuv), coroutine tasks with stacks of
 * their own, await, futures, gather/wait, async-with style scopes, locks and
 * queues, cancellation and deadlines.
 */
#ifndef CORIO_H
#define CORIO_H

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 2
#define CORIO_VERSION_PATCH 0
#define CORIO_VERSION_STRING "0.2.0"

#include "app.h"
#include "error.h"
#include "future.h"
#include "http.h"
#include "http_client.h"
#include "http_file.h"
#include "http_test.h"
#include "pg.h"
#include "redis.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "loop.h"
#include "resource.h"
#include "scope.h"
#include "server.h"
#include "stream.h"
#include "sync.h"
#include "task.h"
#include "tls.h"
#include "websocket.h"

#endif /* CORIO_H */
