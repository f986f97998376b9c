# SPDX-License-Identifier: MIT
"""The Python peer of bench/db_bench.sh: a raw ASGI app for uvicorn (one
worker) with an asyncpg pool, serving TechEmpower's /db, /queries?queries=N
and /fortunes as TechEmpower's uvicorn entry does: asyncpg's prepared
statements (its per-connection statement cache for fetchval and fetch, an
explicit connection.prepare for the queries of /queries), one pool checkout
per request, queries clamped to 1..500.

    DB_URI=postgresql://user@127.0.0.1:5432/hello_world DB_POOL=8 \
        uvicorn --app-dir bench/db asyncpg_app:app --loop asyncio ...

Where TechEmpower's entry uses orjson and a jinja2 template (autoescape),
this one uses the standard library's json.dumps and html.escape (the same
escaping as jinja2's: & < > " '): Debian 12 ships neither orjson nor jinja2
by default, and the bench must run with python3-asyncpg and uvicorn only.
"""

import html
import json
import os
import random
from operator import itemgetter
from urllib.parse import parse_qs

import asyncpg

READ_ROW_SQL = 'SELECT "randomnumber" FROM "world" WHERE id = $1'
FORTUNES_SQL = 'SELECT * FROM "fortune"'
ADDITIONAL_ROW = [0, "Additional fortune added at request time."]

JSON_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [[b"content-type", b"application/json"]],
}
HTML_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [[b"content-type", b"text/html; charset=utf-8"]],
}
NOT_FOUND_START = {
    "type": "http.response.start",
    "status": 404,
    "headers": [[b"content-type", b"text/plain"]],
}

pool = None


def get_num_queries(scope):
    try:
        n = int(parse_qs(scope["query_string"])[b"queries"][0])
    except (KeyError, IndexError, ValueError):
        return 1
    if n < 1:
        return 1
    if n > 500:
        return 500
    return n


async def single_database_query(scope, receive, send):
    row_id = random.randint(1, 10000)
    async with pool.acquire() as connection:
        number = await connection.fetchval(READ_ROW_SQL, row_id)
    body = json.dumps({"id": row_id, "randomNumber": number}).encode()
    await send(JSON_START)
    await send({"type": "http.response.body", "body": body})


async def multiple_database_queries(scope, receive, send):
    num_queries = get_num_queries(scope)
    row_ids = [random.randint(1, 10000) for _ in range(num_queries)]
    worlds = []
    async with pool.acquire() as connection:
        statement = await connection.prepare(READ_ROW_SQL)
        for row_id in row_ids:
            number = await statement.fetchval(row_id)
            worlds.append({"id": row_id, "randomNumber": number})
    body = json.dumps(worlds).encode()
    await send(JSON_START)
    await send({"type": "http.response.body", "body": body})


async def fortunes(scope, receive, send):
    async with pool.acquire() as connection:
        rows = await connection.fetch(FORTUNES_SQL)
    rows = [list(r) for r in rows]
    rows.append(ADDITIONAL_ROW)
    rows.sort(key=itemgetter(1))
    parts = ["<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
             "<tr><th>id</th><th>message</th></tr>"]
    for fid, message in rows:
        parts.append(f"<tr><td>{fid}</td><td>{html.escape(message)}</td></tr>")
    parts.append("</table></body></html>")
    body = "".join(parts).encode()
    await send(HTML_START)
    await send({"type": "http.response.body", "body": body})


async def not_found(scope, receive, send):
    await send(NOT_FOUND_START)
    await send({"type": "http.response.body", "body": b"Not found"})


routes = {
    "/db": single_database_query,
    "/queries": multiple_database_queries,
    "/fortunes": fortunes,
}


async def lifespan(scope, receive, send):
    global pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                size = int(os.environ.get("DB_POOL", "8"))
                pool = await asyncpg.create_pool(dsn=os.environ["DB_URI"],
                                                 min_size=size, max_size=size)
            except Exception as e:  # uvicorn reports it and exits
                await send({"type": "lifespan.startup.failed", "message": repr(e)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if pool is not None:
                await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "http":
        await routes.get(scope["path"], not_found)(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
