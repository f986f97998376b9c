/* SPDX-License-Identifier: MIT */
/* corio/link.h — the intrusive list link that corio's public structures
 * embed (wait queues, a task group's members).  Private to corio: its
 * operations are in framework/base/list.h.
 */
#ifndef CORIO_LINK_H
#define CORIO_LINK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Intrusive list link; private to corio. */
typedef struct corio__link {
    struct corio__link *next, *prev;
} corio__link;

#ifdef __cplusplus
}
#endif
#endif /* CORIO_LINK_H */
