/* docs/snippets/timeout.c: a deadline over a block, and a shield.
 *
 *     async def main():
 *         try:
 *             async with asyncio.timeout(0.1):
 *                 await asyncio.sleep(10)
 *         except TimeoutError:
 *             print("timed out")
 */
#include <corio/corio.h>
#include <stdio.h>

static int amain(void *arg) {
    (void)arg;
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(100)) {
        rc = corio_sleep(
            10000); /* every await in the block returns CORIO_ETIMEDOUT once it passes */
        if (rc == CORIO_ETIMEDOUT) {
            printf("timed out\n");
            CORIO_WITH(corio_shield_scope()) { /* asyncio.shield: cleanup that must finish */
                rc = corio_sleep(10);
                printf("cleanup ran: %s\n", rc == 0 ? "yes" : corio_err_name(rc));
            }
        }
    }
    return 0;
}

int main(void) {
    return corio_run(amain, NULL) < 0;
}
