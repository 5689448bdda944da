/*
 * Files handed over as descriptors. A domain's process under domusd never
 * opens a client's path: domusd opens each file with the client's rights
 * and passes the descriptor, and the configuration it writes names it
 * "/dev/fd/N". Such a path is used as the descriptor it names, duplicated,
 * never opened again (reopening through /proc would check the rights
 * anew, as this process).
 */
#ifndef DOMUS_PASSED_FD_H
#define DOMUS_PASSED_FD_H

/* N for "/dev/fd/N" naming an open descriptor, else -1. */
int passed_fd(const char *path);
/*
 * open(path, flags | O_CLOEXEC), or for a passed descriptor a duplicate of
 * it, rewound to its start (the file is read from the start each time).
 * fd or -1 with errno set.
 */
int passed_open(const char *path, int flags);

#endif
