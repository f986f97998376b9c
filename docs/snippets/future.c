/* docs/snippets/future.c: a future completed by another task.
 *
 *     async def main():
 *         fut = asyncio.get_running_loop().create_future()
 *         asyncio.get_running_loop().call_later(0.1, fut.set_result, "ready")
 *         print(await fut)
 */
#include <corio/corio.h>
#include <stdio.h>

static int producer(void *arg) {
    corio_future *fut = arg;
    int rc = corio_sleep(100);
    if (rc == 0)
        corio_future_resolve(fut, "ready"); /* fut.set_result("ready") */
    return rc;
}

static int amain(void *arg) {
    (void)arg;
    corio_future *fut;
    int rc = corio_future_new(&fut);
    if (rc < 0)
        return rc;
    corio_task *t;
    if ((rc = corio_spawn(&t, "producer", producer, fut)) == 0) {
        rc = corio_await(fut); /* the future's result: 0, or a CORIO_E* code */
        if (rc == 0)
            printf("%s\n", (const char *)corio_future_value(fut));
        corio_await(t);
        corio_task_release(t);
    }
    corio_future_release(fut);
    return rc;
}

int main(void) {
    return corio_run(amain, NULL) < 0;
}
