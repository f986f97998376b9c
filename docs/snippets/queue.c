/* docs/snippets/queue.c: a bounded queue between a producer and a consumer,
 * and a lock held across an await.
 *
 *     q = asyncio.Queue(maxsize=2); lock = asyncio.Lock()
 *     async def producer():
 *         for i in range(5): await q.put(i)
 *         await q.put(None)
 *     async def consumer():
 *         while (i := await q.get()) is not None:
 *             async with lock: total += i
 */
#include <corio/corio.h>
#include <stdio.h>

static corio_queue *q;
static corio_lock lock;
static int total;

static int producer(void *arg) {
    (void)arg;
    for (intptr_t i = 1; i <= 5; i++) {
        int rc = corio_queue_put(q, (void *)i); /* waits while 2 items are queued */
        if (rc < 0)
            return rc;
    }
    corio_queue_close(q); /* the consumer drains what is queued, then sees CORIO_ECLOSED */
    return 0;
}

static int consumer(void *arg) {
    (void)arg;
    void *item;
    while (corio_queue_get(q, &item) == 0) {
        CORIO_WITH(corio_lock_scope(&lock)) { /* async with lock: released on every way out */
            total += (int)(intptr_t)item;
        }
    }
    return 0;
}

static int amain(void *arg) {
    (void)arg;
    corio_lock_init(&lock);
    int rc = corio_queue_new(&q, 2);
    if (rc < 0)
        return rc;
    corio_task_group g;
    CORIO_WITH(corio_task_group_scope(&g)) {
        corio_task_group_spawn(&g, NULL, "producer", producer, NULL);
        corio_task_group_spawn(&g, NULL, "consumer", consumer, NULL);
    }
    printf("total %d\n", total);
    corio_queue_free(q);
    return corio_task_group_result(&g);
}

int main(void) {
    return corio_run(amain, NULL) < 0;
}
