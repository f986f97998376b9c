/* SPDX-License-Identifier: MIT */
/* Intrusive circular doubly linked lists.
 *
 * A node that is not on a list points at itself, so removing a node twice, or
 * removing a node without knowing its list, is always safe: that is what lets
 * a cancelled waiter leave whatever queue it waited in.
 */
#ifndef CORIO_BASE_LIST_H
#define CORIO_BASE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "corio/link.h"

#define corio__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void corio__list_init(corio__link *n) {
    n->next = n->prev = n;
}

static inline bool corio__list_empty(const corio__link *head) {
    return head->next == head;
}

/* For a node: whether it is on some list. */
static inline bool corio__list_linked(const corio__link *n) {
    return n->next != n;
}

static inline void corio__list_push_back(corio__link *head, corio__link *n) {
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void corio__list_remove(corio__link *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

/* Removes and returns the first node, or NULL when the list is empty. */
static inline corio__link *corio__list_pop_front(corio__link *head) {
    corio__link *n = head->next;
    if (n == head)
        return NULL;
    /* clang-analyzer does not know that n->prev is head, and once a caller
     * has freed a node it popped, it takes head->next for that node still:
     * NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
    corio__list_remove(n);
    return n;
}

#endif
