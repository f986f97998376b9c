/* docs/snippets/demo.c: two coroutines sleeping at the same time.
 *
 *     async def f(first, then):
 *         print(first); await asyncio.sleep(2); print(then)
 *     async def main():
 *         await asyncio.gather(f(1, 2), f(3, 4))
 *     asyncio.run(main())
 */
#include <corio/corio.h>
#include <stdio.h>

typedef struct pair {
    int first, then;
} pair;

static int f(void *arg) { /* a coroutine function: its body runs as a task */
    pair *p = arg;
    printf("%d\n", p->first);
    int rc = corio_sleep(2000); /* an await: the other task runs meanwhile */
    if (rc < 0)
        return rc; /* cancelled, or a deadline passed */
    printf("%d\n", p->then);
    return 0;
}

static int amain(void *arg) {
    (void)arg;
    pair p1 = {1, 2}, p2 = {3, 4};
    corio_task *a, *b;
    if (corio_spawn(&a, "f1", f, &p1) < 0)
        return CORIO_ENOMEM;
    if (corio_spawn(&b, "f2", f, &p2) < 0) {
        corio_task_release(a);
        return CORIO_ENOMEM;
    }
    corio_future *both[] = {corio_task_future(a), corio_task_future(b)}; /* a task is a future */
    uint64_t start = corio_now();
    int rc = corio_gather(both, 2);
    printf("done in %.0f s\n", (double)(corio_now() - start) / 1000.0);
    corio_task_release(a);
    corio_task_release(b);
    return rc;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    return corio_run(amain, NULL) < 0; /* asyncio.run */
}
