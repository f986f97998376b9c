/* docs/snippets/taskgroup.c: structured concurrency; the first failure
 * cancels the rest.
 *
 *     async def work(ms, fail):
 *         await asyncio.sleep(ms / 1000)
 *         if fail: raise RuntimeError()
 *     async with asyncio.TaskGroup() as tg:
 *         tg.create_task(work(50, True)); tg.create_task(work(5000, False))
 */
#include <corio/corio.h>
#include <stdio.h>

static int work(void *arg) {
    intptr_t ms = (intptr_t)arg;
    int rc = corio_sleep((uint64_t)(ms < 0 ? -ms : ms));
    if (rc < 0) {
        printf("%ld ms: %s\n", (long)ms, corio_err_name(rc)); /* the sibling is cancelled */
        return rc;
    }
    if (ms < 0) {
        printf("%ld ms: failing\n", (long)-ms);
        return CORIO_EFAILED;
    }
    return 0;
}

static int amain(void *arg) {
    (void)arg;
    corio_task_group g;
    CORIO_WITH(corio_task_group_scope(&g)) {
        corio_task_group_spawn(&g, NULL, "fails", work, (void *)(intptr_t)-50);
        corio_task_group_spawn(&g, NULL, "slow", work, (void *)(intptr_t)5000);
    } /* waits for every member */
    printf("group: %s\n", corio_err_name(corio_task_group_result(&g)));
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    return corio_run(amain, NULL) < 0;
}
