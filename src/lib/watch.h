/*
 * What woke an event loop: the kind of descriptor (the loop owner's own
 * enumeration: domusd's in ctl/watch.h, `domus run`'s front's in
 * ctl/run_front.c) and the object it belongs to.
 */
#ifndef DOMUS_LIB_WATCH_H
#define DOMUS_LIB_WATCH_H

struct watch {
	int kind;
	void *ptr;
};

/* The loop's registration, which code that serves several loops is handed. */
struct watch_loop {
	void (*add)(int fd, struct watch *w);
	void (*del)(int fd);
};

#endif
