/* L0: an intrusive, circular, doubly linked list (as the Linux kernel's and
 * libuv's queue). A list is a sentinel node; an element embeds a node and is
 * found from it with list_entry. A node that is in no list points at itself,
 * so removing it twice is harmless. */
#ifndef MW_LIST_H
#define MW_LIST_H

#include <stddef.h>

typedef struct mw_list {
  struct mw_list *prev, *next;
} mw_list;

#define list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

/* for (node in list); node may be removed inside the loop (next is saved) */
#define list_each(node, next_node, list)                                                           \
  for ((node) = (list)->next, (next_node) = (node)->next; (node) != (list);                        \
       (node) = (next_node), (next_node) = (node)->next)

static inline void list_init(mw_list *node) {
  node->prev = node->next = node;
}

static inline int list_empty(const mw_list *list) {
  return list->next == list;
}

/* Whether node is in a list (a list head: whether it has elements). */
static inline int list_linked(const mw_list *node) {
  return node->next != node;
}

static inline void list_link(mw_list *prev, mw_list *node, mw_list *next) {
  node->prev = prev;
  node->next = next;
  prev->next = node;
  next->prev = node;
}

static inline void list_push_back(mw_list *list, mw_list *node) {
  list_link(list->prev, node, list);
}

static inline void list_push_front(mw_list *list, mw_list *node) {
  list_link(list, node, list->next);
}

static inline void list_remove(mw_list *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = node;
}

/* The first element, or NULL when the list is empty. */
static inline mw_list *list_first(const mw_list *list) {
  return list->next == list ? NULL : list->next;
}

#endif
