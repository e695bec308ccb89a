/* Intrusive doubly linked list, circular with a head node (the shape of the
 * kernel's list_head). Owns nothing: callers embed struct list_node and free. */
#ifndef ST_LIST_H
#define ST_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

/* the struct of type holding the node p at member */
#define list_entry(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))
#define list_first_entry(head, type, member) list_entry((head)->next, type, member)
/* walk that tolerates deleting the current entry (nx is the next node) */
#define list_for_each_safe(n, nx, head) \
	for ((n) = (head)->next, (nx) = (n)->next; (n) != (head); (n) = (nx), (nx) = (n)->next)
#define list_for_each(n, head) for ((n) = (head)->next; (n) != (head); (n) = (n)->next)

static inline void list_init(struct list_node *l)
{
	l->prev = l->next = l;
}

/* a head: nothing on it; a member node: on no list */
static inline bool list_empty(const struct list_node *l)
{
	return l->next == l;
}

static inline void list_del(struct list_node *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	list_init(l);
}

static inline void list_add_tail(struct list_node *head, struct list_node *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static inline void list_move_tail(struct list_node *head, struct list_node *l)
{
	list_del(l);
	list_add_tail(head, l);
}

/* Move the nodes of from up to (not including) stop onto the tail of to; stop ==
 * from moves them all. O(1). */
static inline void list_cut_before(struct list_node *to, struct list_node *from,
				   struct list_node *stop)
{
	struct list_node *first = from->next, *last = stop->prev;

	if (first == stop)
		return;
	/* unhook [first, last] from from */
	from->next = stop;
	stop->prev = from;
	/* hook it onto to's tail */
	first->prev = to->prev;
	to->prev->next = first;
	last->next = to;
	to->prev = last;
}

#endif
