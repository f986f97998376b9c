/* docs/snippets/cancel.c: cancelling a task; its await returns, it cleans
 * up and ends.
 *
 *     t = asyncio.create_task(worker())
 *     await asyncio.sleep(0.05); t.cancel()
 *     try: await t
 *     except asyncio.CancelledError: print("cancelled")
 */
#include <corio/corio.h>
#include <stdio.h>

static int worker(void *arg) {
    (void)arg;
    int rc = corio_sleep(10000);
    printf("worker: sleep returned %s (reason: %s)\n", corio_err_name(rc),
           corio_cancel_reason_name(corio_cancelled_reason()));
    return rc; /* a task ending with CORIO_ECANCELED is a cancelled task */
}

static int amain(void *arg) {
    (void)arg;
    corio_task *t;
    int rc = corio_spawn(&t, "worker", worker, NULL);
    if (rc < 0)
        return rc;
    corio_sleep(50);
    corio_cancel(t);
    rc = corio_await(t); /* the task's own result */
    printf("main: the task ended with %s\n", corio_err_name(rc));
    corio_task_release(t);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    return corio_run(amain, NULL) < 0;
}
